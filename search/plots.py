"""Optimisation plots and a one-page report that open offline.

Each figure is a pure ``*_info`` function (what is plotted: a test can check it) and a thin
plotly drawing. ``optuna.visualization`` draws whatever it already can; this module adds what
it lacks: learning curves that show pruned trials as such, and accuracy against latency and
parameter count with the Pareto front and the budget limits.

Every HTML file refers to one ``plotly.min.js`` written beside it: no network, no CDN.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState

from search.data import CLASSES
from search.record import Attr, End, best_complete, chains, ends
from search.report import report_html, tally, trials_frame
from search.settings import Settings
from search.storage import study_dir

PLOTLY_JS = "plotly.min.js"
END_STYLE = {  # colour and dash of each way a trial can end; others: orange dash-dot
    End.COMPLETE: ("#1f77b4", "solid"),
    End.PRUNED: ("#9e9e9e", "dash"),
    End.DIVERGED: ("#d62728", "dot"),
    End.PAUSED: ("#2ca02c", "dash"),
}


# --- what is plotted ------------------------------------------------------------------------


def learning_curves_info(study: optuna.Study) -> list[dict[str, Any]]:
    """Validation accuracy after each epoch of every config that reported one: a promoted
    config's segments joined into one curve, ending as its last segment ended."""
    out = []
    end = ends(study)
    for number, chain in chains(study.get_trials(deepcopy=False)).items():
        curve = {step: v for t in chain for step, v in t.intermediate_values.items()}
        if curve:
            steps = sorted(curve)
            out.append(
                {
                    "number": number,
                    "end": end[chain[-1].number][0],
                    "state": chain[-1].state.name,
                    "epochs": steps,
                    "values": [curve[s] for s in steps],
                    "segments": [t.number for t in chain],
                }
            )
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


def _groups(values: list[Any], bins: int) -> np.ndarray:
    """A group label per value: numbers by quantile bin (by value when few distinct), anything
    else by value; None (not sampled) its own group."""
    present = [v for v in values if v is not None]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
    if numeric and len(set(present)) > bins:
        edges = np.quantile(np.array(present, dtype=float), np.linspace(0, 1, bins + 1)[1:-1])
        key = [None if v is None else int(np.searchsorted(edges, v, side="right")) for v in values]
    else:
        key = [None if v is None else repr(v) for v in values]
    labels = {k: i for i, k in enumerate(dict.fromkeys(key))}
    return np.array([labels[k] for k in key])


def omega_squared(y: np.ndarray, groups: np.ndarray) -> float:
    """Omega squared of ``y`` grouped by ``groups``, clipped to [0, 1]; 0 with one group or
    fewer observations than groups plus one."""
    labels, mean = np.unique(groups), y.mean()
    n, k = len(y), len(labels)
    total = float(((y - mean) ** 2).sum())
    if k < 2 or n <= k or total == 0.0:
        return 0.0
    between = sum((groups == g).sum() * (y[groups == g].mean() - mean) ** 2 for g in labels)
    within_mean = (total - between) / (n - k)
    return float(np.clip((between - (k - 1) * within_mean) / (total + within_mean), 0.0, 1.0))


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: accuracy as high, cost as low, one strictly."""
    front = []
    for i, (acc, cost) in enumerate(points):
        dominated = any(
            a >= acc and c <= cost and (a > acc or c < cost)
            for j, (a, c) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][1])


def pareto_info(study: optuna.Study, cost: str, limit: float) -> dict[str, Any]:
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
            complete.append({"number": t.number, "value": t.value, "cost": c})
        elif end[t.number][0] == End.OVER_BUDGET:
            over.append({"number": t.number, "cost": c})
        elif t.intermediate_values:
            last = t.intermediate_values[max(t.intermediate_values)]
            pruned.append({"number": t.number, "value": last, "cost": c, "end": end[t.number][0]})
    front = pareto_front([(p["value"], p["cost"]) for p in complete])
    return {
        "cost": cost,
        "limit": limit,
        "complete": complete,
        "front": [complete[i]["number"] for i in front],
        "pruned": pruned,
        "over_budget": over,
    }


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


# --- drawing ---------------------------------------------------------------------------------


def message_figure(title: str, text: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 16}
    )
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def learning_curves_figure(info: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    for c in info:
        colour, dash = END_STYLE.get(c["end"], ("#ff7f0e", "dashdot"))
        fig.add_trace(
            go.Scatter(
                x=c["epochs"],
                y=c["values"],
                mode="lines+markers",
                name=f"#{c['number']} {c['end']}",
                legendgroup=c["end"],
                line={"color": colour, "dash": dash},
                marker={
                    "symbol": ["circle"] * (len(c["epochs"]) - 1)
                    + ["x" if c["end"] != End.COMPLETE else "circle"],
                    "size": 7,
                },
                opacity=1.0 if c["end"] == End.COMPLETE else 0.6,
            )
        )
    fig.update_layout(
        title="Learning curves (validation accuracy per epoch; dashed grey: pruned, x: stopped)",
        xaxis_title="epoch",
        yaxis_title="validation accuracy",
    )
    if not info:
        return message_figure("Learning curves", "no trial has reported an epoch yet")
    return fig


def importances_figure(info: dict[str, float]) -> go.Figure:
    names = list(info)[::-1]  # largest at the top
    fig = go.Figure(
        go.Bar(
            x=[info[n] for n in names],
            y=names,
            orientation="h",
            text=[f"{info[n]:.2f}" for n in names],
            marker={"color": "#1f77b4"},
        )
    )
    fig.update_layout(
        xaxis_title="omega squared: share of the validation accuracy's variance explained alone",
        yaxis_title="parameter",
    )
    return fig


def pareto_figure(info: dict[str, Any]) -> go.Figure:
    label = {"latency_p50_ms": "latency p50 (ms, batch 1)", "n_params": "parameters"}[info["cost"]]
    fig = go.Figure()
    done = info["complete"]
    front = set(info["front"])
    fig.add_trace(
        go.Scatter(
            x=[p["cost"] for p in done],
            y=[p["value"] for p in done],
            mode="markers",
            name="complete",
            text=[f"#{p['number']}" for p in done],
            marker={
                "color": ["#d62728" if p["number"] in front else "#1f77b4" for p in done],
                "size": 9,
            },
        )
    )
    f = [p for p in done if p["number"] in front]
    f.sort(key=lambda p: p["cost"])
    fig.add_trace(
        go.Scatter(
            x=[p["cost"] for p in f],
            y=[p["value"] for p in f],
            mode="lines",
            name="Pareto front",
            line={"color": "#d62728"},
        )
    )
    if info["pruned"]:
        fig.add_trace(
            go.Scatter(
                x=[p["cost"] for p in info["pruned"]],
                y=[p["value"] for p in info["pruned"]],
                mode="markers",
                name="pruned (last reported epoch)",
                text=[f"#{p['number']}" for p in info["pruned"]],
                marker={"color": "#bdbdbd", "symbol": "circle-open", "size": 8},
            )
        )
    if info["over_budget"]:
        fig.add_trace(
            go.Scatter(
                x=[p["cost"] for p in info["over_budget"]],
                y=[0.0] * len(info["over_budget"]),
                mode="markers",
                name="over budget (not trained)",
                text=[f"#{p['number']}" for p in info["over_budget"]],
                marker={"color": "#ff7f0e", "symbol": "x", "size": 9},
            )
        )
    fig.add_vline(
        x=info["limit"],
        line_dash="dash",
        line_color="#ff7f0e",
        annotation_text=f"budget {info['limit']:,.0f}"
        if info["cost"] == "n_params"
        else f"budget {info['limit']:g} ms",
    )
    fig.update_layout(
        title=f"Validation accuracy against {label}",
        xaxis_title=label,
        yaxis_title="validation accuracy",
    )
    return fig


def _guard(title: str, draw: Callable[[], go.Figure]) -> go.Figure:
    """Optuna's plots refuse some studies (one trial, one distinct value): say why instead."""
    try:
        fig = draw()
    except Exception as e:  # noqa: BLE001
        return message_figure(title, f"not available for this study: {e}")
    fig.update_layout(title=title)
    return fig


def figures(study: optuna.Study, settings: Settings) -> dict[str, go.Figure]:
    """Every figure of the report, by file stem."""
    with warnings.catch_warnings():  # importance estimates on few trials warn; the plot says enough
        warnings.simplefilter("ignore")
        return _figures(study, settings)


def optuna_visualization():
    """``optuna.visualization``, imported without matplotlib: the package imports its matplotlib
    twin, which imports pyplot (0.5 s of a 1.3 s ``plots`` here) that plotly figures never use.
    Optuna guards that import (its matplotlib figures would say matplotlib is missing), so it is
    blocked for the moment of the import and unblocked after; ``import matplotlib`` works again."""
    if "matplotlib" in sys.modules or "optuna.visualization" in sys.modules:
        import optuna.visualization as vis

        return vis
    sys.modules["matplotlib"] = None  # type: ignore[assignment]  # Python's "import blocked"
    try:
        import optuna.visualization as vis
    finally:
        del sys.modules["matplotlib"]
    return vis


def _figures(study: optuna.Study, settings: Settings) -> dict[str, go.Figure]:
    vis = optuna_visualization()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    target = "validation accuracy"
    figs: dict[str, go.Figure] = {}
    optuna_figs = {
        "history": (
            "Optimisation history",
            lambda: vis.plot_optimization_history(study, target_name=target),
        ),
        "importances": (
            "Parameter importances",
            lambda: importances_figure(importances_info(study)),
        ),
        "parallel_coordinates": (
            "Parallel coordinates",
            lambda: vis.plot_parallel_coordinate(study, target_name=target),
        ),
        "slices": ("Slices", lambda: vis.plot_slice(study, target_name=target)),
        "contour": (
            "Contour of the two most important parameters",
            lambda: vis.plot_contour(study, params=_top2(study), target_name=target),
        ),
    }
    for stem, (title, draw) in optuna_figs.items():
        if not complete:
            figs[stem] = message_figure(title, _no_complete(study))
        else:
            figs[stem] = _guard(title, draw)
    figs["learning_curves"] = learning_curves_figure(learning_curves_info(study))
    figs["timeline"] = _guard("Timeline of trials", lambda: vis.plot_timeline(study))
    figs["pareto_latency"] = pareto_figure(
        pareto_info(study, Attr.LATENCY_P50, settings.max_latency_ms)
    )
    figs["pareto_params"] = pareto_figure(pareto_info(study, Attr.N_PARAMS, settings.max_params))
    return figs


def _no_complete(study: optuna.Study) -> str:
    n = len(study.trials)
    return f"no complete trial yet ({n} trial{'s' * (n != 1)} so far, none trained to the end)"


def _top2(study: optuna.Study) -> list[str]:
    """The two most important parameters (the first two, when importances cannot be had)."""
    names = list(dict.fromkeys(k for t in study.trials for k in t.params))
    try:
        ranked = [n for n, v in importances_info(study).items() if v > 0]
    except ValueError:  # too few complete trials
        ranked = []
    names = ranked + [n for n in names if n not in ranked]
    if len(names) < 2:
        raise ValueError("a contour needs two parameters")
    return names[:2]


# --- files ------------------------------------------------------------------------------------


def write_plotly_js(out: Path) -> None:
    path = out / PLOTLY_JS
    if not path.exists():
        from plotly.offline import get_plotlyjs

        path.write_text(get_plotlyjs(), encoding="utf-8")


class _ReadOnlyMemory(optuna.storages.InMemoryStorage):
    """An in-memory storage that hands out its trials without copying them: Optuna's figures
    ask for deep copies, 0.5 s of a ``plots`` of 50 trials, and only read them."""

    def get_all_trials(self, study_id, deepcopy=True, states=None):
        return super().get_all_trials(study_id, deepcopy=False, states=states)


def in_memory(study: optuna.Study) -> optuna.Study:
    """A copy of the study in memory: the figures read its trials about 50 times, each a full
    read of a journal file or a database round trip."""
    copy = optuna.create_study(
        storage=_ReadOnlyMemory(),
        study_name=study.study_name,
        directions=study.directions,
    )
    for key, value in study.user_attrs.items():
        copy.set_user_attr(key, value)
    copy.add_trials(study.get_trials(deepcopy=False))
    return copy


def write_all(study: optuna.Study, settings: Settings, out: Path | None = None) -> Path:
    """Write ``trials.csv``, one HTML file per figure and ``report.html`` into ``out``
    (default ``results/STUDY/``); return the report's path."""
    out = out or study_dir(study.study_name)
    out.mkdir(parents=True, exist_ok=True)
    study = in_memory(study)
    write_plotly_js(out)
    trials_frame(study, settings.space()).to_csv(out / "trials.csv", index=False)
    figs = figures(study, settings)
    for stem, fig in figs.items():
        fig.write_html(out / f"{stem}.html", include_plotlyjs=PLOTLY_JS, full_html=True)
    info = summary_info(study, settings)
    (out / "summary.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    report = out / "report.html"
    report.write_text(report_html(info, figs, plotly_js=PLOTLY_JS), encoding="utf-8")
    return report


def write_confusion(run: Path, cm: np.ndarray) -> None:
    """CSV of counts, and two PNGs: counts and row-normalised (recall per true class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame(cm, index=list(CLASSES), columns=list(CLASSES))
    table.to_csv(run / "confusion_matrix.csv", index_label="true \\ predicted")
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    for name, mat, fmt in (
        ("confusion_matrix.png", cm, "d"),
        ("confusion_matrix_normalized.png", norm, ".2f"),
    ):
        fig, ax = plt.subplots(figsize=(8, 7))
        im = ax.imshow(mat, cmap="Blues")
        fig.colorbar(im, ax=ax)
        ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
        ax.set_yticks(range(len(CLASSES)), CLASSES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("Confusion matrix" + (" (normalised by true class)" if fmt != "d" else ""))
        hi = mat.max() / 2
        for (i, j), v in np.ndenumerate(mat):
            colour = "white" if v > hi else "black"
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7, color=colour)
        fig.tight_layout()
        fig.savefig(run / name, dpi=100)
        plt.close(fig)
