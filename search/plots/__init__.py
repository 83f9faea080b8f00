"""Optimisation plots and a one-page report that open offline.

Each figure is a pure ``*_info`` function (what is plotted, :mod:`search.plots.info`: a test
can check it) and a thin plotly drawing, here; the statistics are in :mod:`search.plots.stats`,
the test evaluation's confusion matrix in :mod:`search.confusion` (it draws no study).
``optuna.visualization`` draws whatever it already can; this module adds what it lacks:
learning curves that show pruned trials as such, and accuracy against latency and parameter
count with the Pareto front and the budget limits.

Every HTML file refers to one ``plotly.min.js`` written beside it: no network, no CDN.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState

from search.plots.info import (
    Curve,
    ParetoInfo,
    Point,
    importances_info,
    learning_curves_info,
    pareto_info,
    summary_info,
)
from search.plots.stats import _groups, omega_squared, pareto_front  # noqa: F401 - re-exported
from search.record import Attr, End
from search.report import report_html, trials_frame
from search.settings import Settings
from search.storage import study_dir

PLOTLY_JS = "plotly.min.js"
END_STYLE = {  # colour and dash of each way a trial can end; others: orange dash-dot
    End.COMPLETE: ("#1f77b4", "solid"),
    End.PRUNED: ("#9e9e9e", "dash"),
    End.DIVERGED: ("#d62728", "dot"),
    End.PAUSED: ("#2ca02c", "dash"),
}


# --- drawing ---------------------------------------------------------------------------------


def message_figure(title: str, text: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 16}
    )
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def learning_curves_figure(info: list[Curve]) -> go.Figure:
    fig = go.Figure()
    for c in info:
        colour, dash = END_STYLE.get(c.end, ("#ff7f0e", "dashdot"))
        fig.add_trace(
            go.Scatter(
                x=c.epochs,
                y=c.values,
                mode="lines+markers",
                name=f"#{c.number} {c.end}",
                legendgroup=c.end,
                line={"color": colour, "dash": dash},
                marker={
                    "symbol": ["circle"] * (len(c.epochs) - 1)
                    + ["x" if c.end != End.COMPLETE else "circle"],
                    "size": 7,
                },
                opacity=1.0 if c.end == End.COMPLETE else 0.6,
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


def _points(points: list[Point], name: str, mode: str = "markers", **style: Any) -> go.Scatter:
    """Trials on the accuracy-against-cost plane (refused ones, without a value, on the axis)."""
    return go.Scatter(
        x=[p.cost for p in points],
        y=[0.0 if p.value is None else p.value for p in points],
        mode=mode,
        name=name,
        text=[f"#{p.number}" for p in points],
        **style,
    )


def pareto_figure(info: ParetoInfo) -> go.Figure:
    label = {"latency_p50_ms": "latency p50 (ms, batch 1)", "n_params": "parameters"}[info.cost]
    fig = go.Figure()
    front = set(info.front)
    colours = ["#d62728" if p.number in front else "#1f77b4" for p in info.complete]
    fig.add_trace(_points(info.complete, "complete", marker={"color": colours, "size": 9}))
    f = sorted((p for p in info.complete if p.number in front), key=lambda p: p.cost)
    fig.add_trace(_points(f, "Pareto front", mode="lines", line={"color": "#d62728"}))
    if info.pruned:
        marker = {"color": "#bdbdbd", "symbol": "circle-open", "size": 8}
        fig.add_trace(_points(info.pruned, "pruned (last reported epoch)", marker=marker))
    if info.over_budget:
        marker = {"color": "#ff7f0e", "symbol": "x", "size": 9}
        fig.add_trace(_points(info.over_budget, "over budget (not trained)", marker=marker))
    fig.add_vline(
        x=info.limit,
        line_dash="dash",
        line_color="#ff7f0e",
        annotation_text=f"budget {info.limit:,.0f}"
        if info.cost == "n_params"
        else f"budget {info.limit:g} ms",
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
