"""Sampling near the base config (``--prior base``): the random start-up draws of a study come
from a prior centred on the space's base config instead of uniformly over the space, as
πBO and PriorBand do (Hvarfner et al. 2022; Mallik et al. 2023).

Per parameter: a number is drawn from a normal centred on the base value in the parameter's
own scale (log where the space is log), its standard deviation ``spread`` of the range,
redrawn until inside the range and rounded to the step; a categorical or bool keeps the base
value with probability ``keep``, else takes one of the other choices uniformly. A parameter the
base config does not set (inactive there, or its value outside the range) is drawn uniformly.
After the start-up draws the inner sampler (TPE) models the study as usual.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

SPREAD = 0.15  # the normal's standard deviation, as a fraction of the (log) range
KEEP = 0.6  # a categorical's chance of keeping its base value


def draw_near(
    dist: BaseDistribution, centre: Any, rng: np.random.Generator, spread=SPREAD, keep=KEEP
) -> Any:
    """One value of ``dist`` drawn near ``centre`` (the rules in the module docstring)."""
    if isinstance(dist, CategoricalDistribution):
        choices = list(dist.choices)
        if centre not in choices or len(choices) == 1 or rng.random() < keep:
            return centre if centre in choices else choices[rng.integers(len(choices))]
        others = [c for c in choices if c != centre]
        return others[rng.integers(len(others))]
    assert isinstance(dist, FloatDistribution | IntDistribution), dist
    to = math.log if dist.log else float
    back = math.exp if dist.log else float
    lo, hi = to(dist.low), to(dist.high)
    for _ in range(100):  # a truncated normal, by redrawing
        u = rng.normal(to(centre), spread * (hi - lo))
        if lo <= u <= hi:
            break
    x = min(max(back(min(max(u, lo), hi)), dist.low), dist.high)
    step = dist.step
    if step:
        x = dist.low + round((x - dist.low) / step) * step
        x = min(x, dist.high)
    return int(round(x)) if isinstance(dist, IntDistribution) else float(x)


class Wrapper(optuna.samplers.BaseSampler):
    """A sampler that hands every call to ``inner``; a subclass overrides what it changes
    (:class:`NearBase` here, the promote scheduler's ``LatestSegments``)."""

    def __init__(self, inner: optuna.samplers.BaseSampler):
        self.inner = inner

    def infer_relative_search_space(self, study, trial):
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self.inner.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


class NearBase(Wrapper):
    """Wrap a sampler: its first ``startup`` draws (finished trials, as TPE counts its
    start-up) come from the prior around ``base`` (parameter name -> base value)."""

    def __init__(self, inner: optuna.samplers.BaseSampler, base: dict[str, Any], startup: int,
                 seed: int | None = None, spread: float = SPREAD, keep: float = KEEP):  # fmt: skip
        super().__init__(inner)
        self.base, self.startup = dict(base), startup
        self.spread, self.keep = spread, keep
        self._uniform = optuna.samplers.RandomSampler(seed=seed)
        self._rng = np.random.default_rng(seed)

    def _starting(self, study: optuna.Study) -> bool:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        return len(done) < self.startup

    def sample_relative(self, study, trial, search_space):
        if self._starting(study):
            return {}
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        if not self._starting(study):
            return self.inner.sample_independent(study, trial, param_name, param_distribution)
        if param_name not in self.base:
            return self._uniform.sample_independent(study, trial, param_name, param_distribution)
        return draw_near(
            param_distribution, self.base[param_name], self._rng, self.spread, self.keep
        )

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self._uniform.reseed_rng()
        self._rng = np.random.default_rng()
