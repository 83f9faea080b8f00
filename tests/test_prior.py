"""Sampling near the base config (search/prior.py): the prior's draws, the wrapper's start-up
phase, and the option's checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from search.errors import UserError
from search.prior import NearBase, draw_near
from search.settings import Settings, make_sampler

TINY_SPACE = Path(__file__).parent / "spaces" / "tiny.toml"


def draws(dist, centre, n=2000, **kw):
    rng = np.random.default_rng(0)
    return [draw_near(dist, centre, rng, **kw) for _ in range(n)]


def test_a_log_float_is_drawn_around_its_base_in_log_scale_and_inside_its_range():
    dist = FloatDistribution(1e-4, 1e-1, log=True)
    x = np.log10(draws(dist, 1e-3))
    assert all(-4 <= v <= -1 for v in x)
    assert abs(np.median(x) - (-3)) < 0.05  # centred on the base in log scale
    assert 0.3 < x.std() < 0.6  # 0.15 of 3 decades, a little less where truncated


def test_an_int_with_a_step_lands_on_its_grid_and_stays_near_the_base():
    dist = IntDistribution(32, 96, step=16)
    x = draws(dist, 64)
    assert set(x) <= {32, 48, 64, 80, 96} and all(isinstance(v, int) for v in x)
    assert x.count(64) > x.count(32) and x.count(64) > x.count(96)


def test_a_categorical_keeps_its_base_value_with_the_stated_probability():
    dist = CategoricalDistribution(("sgd", "adamax", "rmsprop"))
    x = draws(dist, "sgd", keep=0.6)
    assert x.count("sgd") / len(x) == pytest.approx(0.6, abs=0.03)
    assert x.count("adamax") == pytest.approx(x.count("rmsprop"), rel=0.15)


def study_draws(sampler, n, value=lambda p: 0.5):
    study = optuna.create_study(direction="maximize", sampler=sampler)
    out = []
    for _ in range(n):
        t = study.ask()
        p = {"lr": t.suggest_float("lr", 1e-4, 1e-1, log=True),
             "act": t.suggest_categorical("act", ["gelu", "elu", "relu"]),
             "extra": t.suggest_float("extra", 0.0, 1.0)}  # fmt: skip
        study.tell(t, value(p))
        out.append(p)
    return out


def test_near_base_draws_its_startup_near_the_base_then_hands_over_to_the_inner_sampler():
    class Inner(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, dist):
            return {"lr": 0.1, "act": "relu", "extra": 0.5}[name]  # recognisable

    sampler = NearBase(Inner(seed=0), {"lr": 1e-3, "act": "gelu"}, startup=40, seed=0)
    got = study_draws(sampler, 50)
    start = got[:40]
    assert abs(np.median(np.log10([p["lr"] for p in start])) + 3) < 0.3
    assert sum(p["act"] == "gelu" for p in start) > 15  # kept about 0.6 of the time
    assert len({p["extra"] for p in start}) == 40  # not in the base: uniform draws
    assert all(p == {"lr": 0.1, "act": "relu", "extra": 0.5} for p in got[40:])


def settings(**kw) -> Settings:
    base = dict(space=str(TINY_SPACE), trials=4, epochs=2, train_size=200, val_size=100)
    return Settings.from_options(**{**base, **kw})


def test_prior_base_is_tpes_default_and_refused_where_it_cannot_apply():
    assert settings().prior == "base" and isinstance(make_sampler(settings()), NearBase)
    assert not isinstance(make_sampler(settings(prior="uniform")), NearBase)
    assert settings(sampler="random").prior == "uniform"  # random search stays uniform
    assert settings(sampler="cmaes").prior == "uniform"  # CMA-ES draws its own start
    assert isinstance(make_sampler(settings(sampler="random", prior="base")), NearBase)
    with pytest.raises(UserError, match="--prior base"):
        settings(prior="base", sampler="cmaes")
    with pytest.raises(UserError, match="prior 'near'"):
        settings(prior="near")
