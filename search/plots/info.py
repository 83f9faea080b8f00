"""What each figure plots, as pure functions of a study (a test can check them without
drawing): learning curves, importances, accuracy against a cost, the summary."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.trial import TrialState

from search.plots.stats import _groups, omega_squared, pareto_front
from search.record import Attr, End, best_complete, chains, ends
from search.report import tally
from search.settings import Settings


class Curve(NamedTuple):
    """One config's learning curve (its segments joined)."""

    number: int  # the config's first segment
    end: str  # how its last segment ended (search.record.End)
    state: str
    epochs: list[int]
    values: list[float]
    segments: list[int]


class Point(NamedTuple):
    """A trial on the accuracy-against-cost plane (``value`` None: refused before training)."""

    number: int
    cost: float
    value: float | None = None
    end: str = ""


class ParetoInfo(NamedTuple):
    cost: str  # the user attribute: latency_p50_ms or n_params
    limit: float
    complete: list[Point]
    front: list[int]  # trial numbers on the Pareto front among ``complete``
    pruned: list[Point]  # at their last reported accuracy
    over_budget: list[Point]


def learning_curves_info(study: optuna.Study) -> list[Curve]:
    """Validation accuracy after each epoch of every config that reported one: a promoted
    config's segments joined into one curve, ending as its last segment ended."""
    out = []
    end = ends(study)
    for number, chain in chains(study.get_trials(deepcopy=False)).items():
        curve = {step: v for t in chain for step, v in t.intermediate_values.items()}
        if curve:
            steps = sorted(curve)
            last = chain[-1]
            values = [curve[s] for s in steps]
            segments = [t.number for t in chain]
            out.append(Curve(number, end[last.number][0], last.state.name, steps, values, segments))
    return out


def importances_info(study: optuna.Study) -> dict[str, float]:
    """Each parameter's importance, largest first: the share of the complete trials' validation
    accuracy variance it explains alone, as omega squared of a one-way analysis of variance, the
    trials grouped by the parameter's value (numbers into about sqrt(n) quantile bins; trials
    that did not sample it, one group of their own). Omega squared discounts what k groups
    explain by chance, so a parameter that does not matter scores about 0.

    fANOVA's first-order terms estimated without a model: numpy only, instant, where
    ``optuna.importance`` imports scikit-learn (1-2 s of a ``plots`` here) and fits a forest."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    y = np.array([t.value for t in complete], dtype=float)
    if len(y) < 3:
        raise ValueError(f"importances need 3 complete trials, the study has {len(y)}")
    bins = max(2, round(len(y) ** 0.5))
    names = dict.fromkeys(k for t in complete for k in t.params)
    out = {n: omega_squared(y, _groups([t.params.get(n) for t in complete], bins)) for n in names}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def pareto_info(study: optuna.Study, cost: str, limit: float) -> ParetoInfo:
    """Accuracy against ``cost`` (``latency_p50_ms`` or ``n_params``).

    ``complete``: trained trials, with the Pareto front among them; ``pruned``: stopped trials
    at their last reported accuracy (not comparable, drawn faint); ``over_budget``: configs
    refused before training (no accuracy; drawn on the axis)."""
    complete, pruned, over = [], [], []
    end = ends(study)
    for t in study.get_trials(deepcopy=False):
        c = t.user_attrs.get(cost)
        if c is None:
            continue
        if t.state == TrialState.COMPLETE and t.value is not None:
            complete.append(Point(t.number, c, t.value, End.COMPLETE))
        elif end[t.number][0] == End.OVER_BUDGET:
            over.append(Point(t.number, c, None, End.OVER_BUDGET))
        elif t.intermediate_values:
            last = t.intermediate_values[max(t.intermediate_values)]
            pruned.append(Point(t.number, c, last, end[t.number][0]))
    front = pareto_front([(p.value, p.cost) for p in complete])
    return ParetoInfo(cost, limit, complete, [complete[i].number for i in front], pruned, over)


def summary_info(study: optuna.Study, settings: Settings) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    n = tally(study, settings)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    best = None
    try:
        b = best_complete(study)
        best = {
            "number": b.number,
            "value": b.value,
            "params": b.params,
            "n_params": b.user_attrs.get(Attr.N_PARAMS),
            "latency_p50_ms": b.user_attrs.get(Attr.LATENCY_P50),
            "config": b.user_attrs.get(Attr.CONFIG),
        }
    except Exception:  # noqa: BLE001 - no complete trial: the page says so
        pass
    return {
        "study": study.study_name,
        "trials": n.trials,
        "by_state": n.by_state,
        "by_end": n.by_end,
        "epochs_per_trial": settings.epochs,
        "epochs_trained": n.epochs_trained,
        "epochs_saved_by_pruning": n.epochs_saved_by_pruning,
        "epochs_saved_by_budget_checks": n.epochs_saved_by_budget_checks,
        "wall_seconds": (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0,
        "best": best,
        "settings": {
            k: v for k, v in settings.__dict__.items() if k not in ("space_text", "deadline")
        },
    }
