"""What a study says in words and tables: a progress line per trial, the summary, the
trials table (``trials.csv``, ``status``) and the tallies behind them and the report page.

``report.html``'s words are here too (its figures come from ``plots``).

To add a column to the trials table: an :class:`~search.record.Attr` key in
:data:`ATTR_COLUMNS`; ``status`` picks its columns from :data:`STATUS_COLUMNS`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import UserError
from search.record import Attr, End, best_complete, chains, end_of, ends, epochs_trained
from search.settings import Settings
from search.space import Space

# trial attributes shown as columns, in order, between the outcome and the times
ATTR_COLUMNS = (
    Attr.N_PARAMS,
    Attr.LATENCY_P50,
    Attr.LATENCY_P95,
    Attr.EPOCHS,
    Attr.TRAIN_SECONDS,
    Attr.SECONDS,
    Attr.WORKER,
    Attr.RESUME_OF,
    Attr.RUNG,
)
BASE_COLUMNS = (
    "number", "state", "end", "value", "value_tta", *ATTR_COLUMNS, "datetime_start",
    "datetime_complete",
)  # fmt: skip
STATUS_COLUMNS = (
    "number", "state", "end", "value", "value_tta", Attr.N_PARAMS, Attr.LATENCY_P50, Attr.EPOCHS,
    Attr.SECONDS, Attr.RESUME_OF, Attr.RUNG,
)  # fmt: skip
SHOWN_AS_DETAIL = (
    End.PRUNED,
    End.COMPLETE,
    End.OVER_BUDGET,
    End.PAUSED,
)  # the progress line says why


@dataclass
class Tally:
    """Counts over a study's trials: by state, by end, and the epochs trained and saved."""

    trials: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    by_end: dict[str, int] = field(default_factory=dict)
    epochs_trained: int | float = 0
    finished: int = 0  # complete or pruned (over-budget ones included)
    epochs_saved_by_pruning: int = 0
    epochs_saved_by_budget_checks: int = 0


def tally(study: optuna.Study, settings: Settings) -> Tally:
    """Counts by trial; the epochs by config (a promoted config's segments together)."""
    trials = study.get_trials(deepcopy=False)
    end = {n: str(e) for n, (e, _) in ends(study).items()}
    out = Tally(trials=len(trials), epochs_trained=epochs_trained(trials))
    for t in trials:
        out.by_state[t.state.name] = out.by_state.get(t.state.name, 0) + 1
        out.by_end[end[t.number]] = out.by_end.get(end[t.number], 0) + 1
    for chain in chains(trials).values():
        last = chain[-1]
        if last.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        out.finished += 1
        if end[last.number] == End.OVER_BUDGET:
            out.epochs_saved_by_budget_checks += settings.epochs
        else:
            out.epochs_saved_by_pruning += settings.epochs - epochs_trained(chain)
    return out


def best_text(study: optuna.Study) -> str:
    """The study's best complete value and trial, for progress lines and bars."""
    try:
        return f"best {study.best_value:.4f} (#{study.best_trial.number})"
    except ValueError:
        return "best -"


def progress_line(study: optuna.Study, t: FrozenTrial) -> str:
    ua = t.user_attrs
    value = f"{t.value:.4f}" if t.value is not None else "  -   "
    params = f"{ua[Attr.N_PARAMS]:>9,}" if Attr.N_PARAMS in ua else " " * 9
    end, detail = end_of(t)
    shown = detail if end in SHOWN_AS_DETAIL else str(end)
    if Attr.RESUME_OF in ua:
        shown = f"resumed #{ua[Attr.RESUME_OF]}: {shown}"
    secs = ua.get(Attr.SECONDS, (t.duration.total_seconds() if t.duration else 0.0))
    return (
        f"trial {t.number:>3}  {params} params  val {value}  {t.state.name:<8} "
        f"{shown.splitlines()[0][:60]:<36} {secs:6.0f}s  {best_text(study)}"
    )


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def summary(study: optuna.Study, s: Settings, wall_s: float | None = None) -> str:
    n = tally(study, s)
    lines = [
        f"study {study.study_name}: {n.trials} trials ("
        + ", ".join(f"{v} {k}" for k, v in sorted(n.by_end.items()))
        + ")",
        f"epochs trained {n.epochs_trained} of {n.finished * s.epochs} without pruning "
        f"({n.finished} configs x {s.epochs})",
    ]
    if wall_s is not None:
        lines.append(f"wall time {wall_s / 60:.1f} min")
    try:
        b = best_complete(study)
        lines.append(f"best trial #{b.number}: validation accuracy {b.value:.4f}")
        lines.append("  " + ", ".join(f"{k}={_fmt(v)}" for k, v in b.params.items()))
    except UserError:
        lines.append("no complete trial yet")
    return "\n".join(lines)


def trials_frame(study: optuna.Study, space: Space | None = None):
    """One row per trial: its outcome, every parameter (``param_NAME``), size, latency, epochs
    and time. Columns are the same for every engine and every study of a space."""
    import pandas as pd

    names = [p.name for p in space.params] if space is not None else []
    end = ends(study)
    rows = []
    for t in study.get_trials(deepcopy=False):
        for k in t.params:
            if k not in names:
                names.append(k)
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "end": str(end[t.number][0]),
                "value": t.value,
                # a complete trial's validation with flip+shift TTA (Attr.VAL_TTA)
                "value_tta": t.user_attrs.get(Attr.VAL_TTA, {}).get("flip_shift"),
                **{c: t.user_attrs.get(c) for c in ATTR_COLUMNS},
                "datetime_start": t.datetime_start,
                "datetime_complete": t.datetime_complete,
                **{f"param_{k}": v for k, v in t.params.items()},
            }
        )
    columns = [*BASE_COLUMNS, *(f"param_{n}" for n in names)]
    return pd.DataFrame(rows, columns=columns)


def status_text(study: optuna.Study, settings: Settings) -> str:
    """What ``status`` prints: the trials table, the summary and the best config."""
    import pandas as pd

    df = trials_frame(study, settings.space())
    cols = [*STATUS_COLUMNS, *(c for c in df.columns if c.startswith("param_"))]
    with pd.option_context(
        "display.max_rows", None, "display.width", 200, "display.max_columns", None,
        "display.precision", 4,
    ):  # fmt: skip
        table = df[cols].rename(columns=lambda c: c.removeprefix("param_")).to_string(index=False)
    parts = [table, "", summary(study, settings)]
    try:
        best = best_complete(study)
        parts += ["best config:", json.dumps(best.user_attrs.get(Attr.CONFIG, {}), indent=2)]
    except UserError:
        pass
    return "\n".join(parts)


def report_html(info: dict[str, Any], figs: dict[str, Any], *, plotly_js: str) -> str:
    """The one-page report: the summary in words, then every figure (plotly figures, drawn
    by ``plotly_js`` beside the page)."""
    e = html.escape
    best = info["best"]
    if best is None:
        best_html = (
            "<p class='warn'>No complete trial yet: nothing has been trained to the end.</p>"
        )
    else:
        best_html = (
            f"<p>Best trial <b>#{best['number']}</b>: validation accuracy "
            f"<b>{best['value']:.4f}</b>, {best['n_params']:,} parameters, latency p50 "
            f"{best['latency_p50_ms']} ms.</p><details><summary>its config</summary><pre>"
            f"{e(json.dumps(best['config'], indent=2))}</pre></details>"
        )
    rows = "".join(
        f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in sorted(info["by_end"].items())
    )
    states = ", ".join(f"{v} {k.lower()}" for k, v in sorted(info["by_state"].items()))
    wall = info["wall_seconds"]
    body = "".join(
        f"<section id='{stem}'>{fig.to_html(full_html=False, include_plotlyjs=False)}</section>"
        for stem, fig in figs.items()
    )
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Study {e(info["study"])}</title>
<script src="{plotly_js}"></script>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}}
table{{border-collapse:collapse}}td{{border:1px solid #ccc;padding:2px 8px}}
.warn{{color:#b00}}section{{margin:1.5em 0}}</style></head>
<body><h1>Study {e(info["study"])}</h1>
<p>{info["trials"]} trials ({e(states)}); {info["epochs_trained"]} epochs trained,
{info["epochs_saved_by_pruning"]} saved by pruning and {info["epochs_saved_by_budget_checks"]}
by budget checks ({info["epochs_per_trial"]} epochs per trial at most);
wall time {wall / 60:.1f} min.</p>
{best_html}
<table><tr><td><b>end</b></td><td><b>trials</b></td></tr>{rows}</table>
<details><summary>study settings</summary><pre>{e(json.dumps(info["settings"], indent=2))}</pre>
</details>
{body}
<p><small>written {stamp} by cifar10-search</small></p></body></html>
"""
