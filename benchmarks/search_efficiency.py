"""Search efficiency: best validation accuracy against epochs trained, for five methods.

One fixed task on the real images (``spaces/seed.toml``, a stratified train subset and
validation set, up to E epochs per trial) and the same compute budget for every method,
counted in epochs trained: (a) Optuna TPE with the Hyperband pruner (the default), (b) TPE
without pruning, (c) random search without pruning, (d) KerasTuner's Hyperband, (e) TPE with
5 start-up trials and the asha pruner (screens a study's first trials). Each runs
with several seeds. Output: the anytime curve (best complete trial so far against cumulative
epochs; mean and spread over seeds) as JSON and a plotly HTML, and for each method the epochs
it needed to reach the final best of (c).

Usage: ``python benchmarks/search_efficiency.py [--seeds 3] [--budget 48] [--epochs 6]
[--work DIR]`` (each method and seed runs in its own process; rerun with the same
``--work`` to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import REAL_ZIP, write  # noqa: E402

# TPE's methods pin prior = "uniform", as their committed seeds ran (before --prior base,
# now TPE's default, existed)
METHODS = {
    "a_tpe_hyperband": dict(sampler="tpe", pruner="hyperband", prior="uniform"),
    "b_tpe_no_pruning": dict(sampler="tpe", pruner="none", prior="uniform"),
    "c_random_no_pruning": dict(sampler="random", pruner="none"),
    "d_kerastuner_hyperband": dict(engine="kerastuner", tuner="hyperband"),
    # (e) TPE with 5 start-up trials and successive halving that screens the first trials
    # (min 2 epochs, factor 3, bootstrap 2) instead of training them in full
    "e_tpe5_asha": dict(sampler="tpe", pruner="asha", startup_trials=5, prior="uniform"),
    # (f) TPE with the promotion scheduler: configs pause at rungs 2 and 6 (factor 3) and the
    # top third resume from their checkpoints (search/schedulers/promote.py), the first
    # promotion once 6 configs reached rung 2 (bootstrap 6: the replay's choice for this task;
    # without it, in 5ba5812's run, (f) reached (c) in 20, 26 and 20 epochs)
    "f_tpe_promote": dict(
        sampler="tpe", pruner="promote", first_rung=2, eta=3, bootstrap=6, prior="uniform"
    ),
    # (g) the default as it is now: TPE whose start-up draws come from the prior near the
    # space's base config (--prior base), the Hyperband pruner
    "g_tpe_default": dict(sampler="tpe", pruner="hyperband"),
    # (h) the promote scheduler with honest rungs: every config gets the wsd schedule (the
    # space's base config with schedule = "wsd", fixed), so each rung is scored on a cooldown
    # branch; the promote defaults (rungs from 1, eta 3, no bootstrap) and the prior near base
    "h_tpe_promote_wsd": dict(sampler="tpe", pruner="promote", fixed={"schedule": "wsd"}),
    # (i) (h) on the trimmed rung ladder (no rung just below the top: 1, 4 for 4-epoch trials
    # where (h) paused at 1, 3, 4) with uniform start-up draws, as the replay gives every method
    "i_tpe_promote_wsd_trim": dict(
        sampler="tpe", pruner="promote", prior="uniform", fixed={"schedule": "wsd"}
    ),
}
# the issue's target for (f): reach (c)'s final best within 16 epochs on every seed, and be
# no worse than (d) at every epoch count from 16 on
F_TARGET_EPOCHS = 16
CHANCE = 0.1  # accuracy of a guess on 10 classes


def anytime(trials) -> list[tuple[int, float]]:
    """(cumulative epochs, best complete value so far) after each trial, in finishing order."""
    from search.record import trial_epochs

    done = sorted((t for t in trials if t.datetime_complete), key=lambda t: t.datetime_complete)
    out, epochs, best = [], 0, float("nan")
    for t in done:
        epochs += trial_epochs(t)
        if t.state.name == "COMPLETE" and t.value is not None:
            best = t.value if not best == best else max(best, t.value)
        out.append((epochs, best))
    return out


def best_at(curve: list[tuple[int, float]], e: float) -> float:
    vals = [b for x, b in curve if x <= e and b == b]
    return max(vals) if vals else float("nan")


def epochs_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((x for x, b in curve if b == b and b >= target), None)


def space_for(method: str, space: Path, work: Path) -> Path:
    """The space a method searches: ``space`` itself, or (a method with ``fixed`` keys) a copy
    in ``work`` with a ``[fixed]`` table of them added."""
    fixed = METHODS[method].get("fixed")
    if not fixed:
        return space
    text = space.read_text()
    if "fixed" in tomllib.loads(text):
        sys.exit(f"{space} has its own [fixed] table; {method} cannot add {fixed} to it.")
    lines = [f"{k} = {json.dumps(v)}" for k, v in fixed.items()]
    path = work / f"{space.stem}-{method}.toml"
    path.write_text(text.rstrip() + "\n\n[fixed]\n" + "\n".join(lines) + "\n")
    return path


def run_one(method: str, seed: int, a: argparse.Namespace, source) -> list[tuple[int, float]]:
    from search.settings import Settings, create_or_resume, load
    from search.worker import run_worker

    options = {k: v for k, v in METHODS[method].items() if k != "fixed"}
    s = Settings.from_options(
        space=str(space_for(method, Path(a.space), Path(a.work))),
        trials=10_000,
        epochs=a.epochs,
        train_size=a.train_size,
        val_size=a.val_size,
        seed=seed,
        epoch_budget=a.budget,
        **options,
    )
    name = f"{method}-s{seed}"
    create_or_resume(name, None, s, given=set(), enqueue_seed=False)
    run_worker(name, None, source)
    return anytime(load(name)[0].get_trials())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=str(REAL_ZIP))
    p.add_argument("--space", default=str(ROOT / "spaces" / "seed.toml"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--budget", type=int, default=48, help="epochs trained per method and seed")
    p.add_argument("--epochs", type=int, default=6, help="epochs of a full trial")
    p.add_argument("--train-size", type=int, default=5000)
    p.add_argument("--val-size", type=int, default=2000)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument(
        "--name",
        default="search_efficiency",
        help="output name under results/benchmarks/ (one per task)",
    )
    p.add_argument(
        "--work",
        default=None,
        help="folder for the studies and finished curves; rerun with the same folder to resume "
        "(default: a new tmp folder)",
    )
    p.add_argument(
        "--reuse",
        metavar="JSON",
        help="take the curves of the methods in this earlier output (same task) instead of "
        "running them again, e.g. results/benchmarks/search_efficiency.json",
    )
    p.add_argument(
        "--fresh",
        default="",
        help="methods to run again even where --reuse has their curves (comma-separated)",
    )
    p.add_argument("--one", nargs=2, metavar=("METHOD", "SEED"), help=argparse.SUPPRESS)
    a = p.parse_args()
    for option in ("methods", "fresh"):
        unknown = sorted(set(filter(None, getattr(a, option).split(","))) - set(METHODS))
        if unknown:
            p.error(
                f"--{option}: unknown methods {', '.join(unknown)}; "
                f"choose from {', '.join(METHODS)}"
            )
    work = Path(a.work or tempfile.mkdtemp(prefix="efficiency-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    a.work = str(work)
    os.environ["CIFAR10_RESULTS"] = str(work)
    task = {
        "space": Path(a.space).name,
        "train_images": a.train_size,
        "val_images": a.val_size,
        "epochs_per_trial": a.epochs,
        "epoch_budget": a.budget,
    }
    if a.one:  # the child: one method and seed, its curve written for the parent
        from search.data import resolve_source

        method, seed = a.one[0], int(a.one[1])
        t = time.perf_counter()
        curve = run_one(method, seed, a, resolve_source(a.data))
        run = {"task": task, "curve": curve, "seconds": time.perf_counter() - t}
        (work / f"{method}-s{seed}.curve.json").write_text(json.dumps(run))
        return
    if a.reuse:
        reuse(Path(a.reuse), work, task, skip=set(filter(None, a.fresh.split(","))))
    curves: dict[str, list] = {}
    seconds: dict[str, list] = {}  # each run's own wall time, also for runs resumed from --work
    for seed in range(a.seeds):
        for method in a.methods.split(","):
            done = work / f"{method}-s{seed}.curve.json"
            if not done.exists():
                # One process per run: TensorFlow keeps every trial's graphs alive
                # (tensorflow#61791), so a single process would grow by gigabytes.
                argv = [sys.executable, __file__, *sys.argv[1:], "--work", str(work)]
                subprocess.run([*argv, "--one", method, str(seed)], check=True)
            run = json.loads(done.read_text())
            measured = run.get("task") if isinstance(run, dict) else None  # None: older file
            if measured != task:  # a folder made for another task: never mix curves
                sys.exit(
                    f"{done} was measured for task {measured}, not {task}; "
                    "give these options a new --work folder (finished runs there are kept)."
                )
            curve = [tuple(x) for x in run["curve"]]
            curves.setdefault(method, []).append(curve)
            seconds.setdefault(method, []).append(run["seconds"])
            print(
                f"{method} seed {seed}: best {curve[-1][1]:.4f} after {curve[-1][0]} epochs "
                f"({run['seconds']:.0f}s)",
                flush=True,
            )
    figures = summarise(curves, seconds, {**task, "seeds": a.seeds})
    path = write(a.name, figures)
    plot(figures, path.with_suffix(".html"))


def reuse(path: Path, work: Path, task: dict, skip: set[str] = frozenset()) -> None:
    """Write the curves of an earlier output into ``work`` as finished runs, so only the
    methods it lacks (and those in ``skip``) are run; refused when it measured another task."""
    old = json.loads(path.read_text())["figures"]
    measured = {k: v for k, v in old["task"].items() if k != "seeds"}
    if measured != task:
        sys.exit(f"{path} measured the task {measured}, not {task}: nothing reused.")
    work.mkdir(parents=True, exist_ok=True)
    for method, m in old["methods"].items():
        if method in skip:
            continue
        for seed, (curve, secs) in enumerate(zip(m["curves"], m["wall_seconds"])):
            done = work / f"{method}-s{seed}.curve.json"
            if not done.exists():
                run = {"task": task, "curve": curve, "seconds": secs, "reused_from": str(path)}
                done.write_text(json.dumps(run))


def summarise(curves: dict[str, list], seconds: dict[str, list], task: dict) -> dict:
    """Anytime curves (mean, min, max over seeds on a grid of epochs), final bests, the epochs
    each run needed to reach (c)'s mean final best, and the issue's target where it applies."""
    grid = list(range(0, task["epoch_budget"] + task["epochs_per_trial"] + 1))
    summary = {}
    c_final = float(np.nanmean([c[-1][1] for c in curves.get("c_random_no_pruning", [])]))
    for method, cs in curves.items():
        mat = np.array([[best_at(c, e) for e in grid] for c in cs])
        with warnings.catch_warnings():  # before any run's first trial the column is all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, low, high = (f(mat, axis=0) for f in (np.nanmean, np.nanmin, np.nanmax))
        summary[method] = {
            "final_best": [c[-1][1] for c in cs],
            "final_best_mean": float(np.nanmean([c[-1][1] for c in cs])),
            "epochs_trained": [c[-1][0] for c in cs],
            "trials": [len(c) for c in cs],
            "anytime_mean": mean.tolist(),
            "anytime_min": low.tolist(),
            "anytime_max": high.tolist(),
            "epochs_to_reach_final_best_of_c": [epochs_to_reach(c, c_final) for c in cs],
            "wall_seconds": seconds[method],
            "curves": cs,
        }
    figures = {
        "task": task,
        "epochs_grid": grid,
        "final_best_of_c_mean": c_final,
        "methods": summary,
        "wall_seconds": sum(sum(v) for v in seconds.values()),
    }
    if {"a_tpe_hyperband", "c_random_no_pruning", "d_kerastuner_hyperband"} <= set(summary):
        figures["target"] = verdict(figures)
    if {"f_tpe_promote", "c_random_no_pruning", "d_kerastuner_hyperband"} <= set(summary):
        figures["target_f"] = verdict(figures, "f_tpe_promote", within=F_TARGET_EPOCHS)
    if {"c_random_no_pruning", "d_kerastuner_hyperband"} <= set(summary):
        figures["against_kerastuner"] = against_kerastuner(curves, task, grid)
    return figures


def interval(values) -> dict:
    """Mean and 95% t-interval over seeds (NaNs left out; no interval from fewer than 2)."""
    x = np.asarray([v for v in values if v == v], dtype=float)
    if len(x) == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    half = float("nan")
    if len(x) > 1:
        half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    m = float(x.mean())
    return {"mean": m, "low": m - half, "high": m + half, "n": int(len(x))}


def against_kerastuner(curves: dict[str, list], task: dict, grid: list[int]) -> dict:
    """Each method against (d) KerasTuner's Hyperband, paired by seed (the same seed's split):
    the mean best with its 95% interval at every epoch, the paired difference to (d) at a
    third, half and all of the budget, the share of seeds whose best within a third of the
    budget reaches (c) random search's final best on that seed, and the target (reach (c)
    within a third, mean difference to (d) at or above zero at every epoch from a third of the
    budget on, its interval never wholly below). The default is the method that meets it with
    the best mean from a third on, or, if none does, the best mean from a third on (a seed
    without a complete trial counting as chance)."""
    budget = task["epoch_budget"]
    third = budget / 3
    marks = sorted({round(third), round(budget / 2), budget})
    span = [e for e in grid if third <= e <= budget]
    best = {m: np.array([[best_at(c, e) for e in grid] for c in cs]) for m, cs in curves.items()}
    d, c_final = best["d_kerastuner_hyperband"], [c[-1][1] for c in curves["c_random_no_pruning"]]
    n = min(len(d), len(c_final))
    out: dict = {"seeds_paired": n, "at_epochs": marks, "methods": {}}
    for method, b in best.items():
        k = min(n, len(b))
        bands = [interval(b[:, i]) for i in range(len(grid))]
        diff = {e: interval(b[:k, grid.index(e)] - d[:k, grid.index(e)]) for e in span}
        reach = [best_at(curves[method][s], third) >= c_final[s] for s in range(k)]
        level = all(diff[e]["mean"] >= 0 and not diff[e]["high"] < 0 for e in span)
        out["methods"][method] = {
            "seeds": int(len(b)),
            "mean_best": [x["mean"] for x in bands],
            "ci_low": [x["low"] for x in bands],
            "ci_high": [x["high"] for x in bands],
            "minus_kerastuner": {str(e): diff[e] for e in marks},
            "share_reaching_c_within_a_third": float(np.mean(reach)) if reach else float("nan"),
            # a seed with no complete trial yet has nothing to hand on: chance, 0.1, not a gap
            # that the mean skips (which favoured a method whose first trial completes late)
            "mean_best_from_a_third": float(
                np.mean(np.nan_to_num(b[:, [grid.index(e) for e in span]], nan=CHANCE))
            ),
            "target_met": bool(
                reach and all(reach) and level and method != "d_kerastuner_hyperband"
            ),
        }
    rows = out["methods"]
    pool = [m for m in rows if rows[m]["target_met"]] or [
        m for m in rows if m not in ("c_random_no_pruning", "d_kerastuner_hyperband")
    ]
    if pool:
        pick = max(pool, key=lambda m: rows[m]["mean_best_from_a_third"])
        out["default"] = {"method": pick, "meets_target": rows[pick]["target_met"]}
    return out


def verdict(figures: dict, method: str = "a_tpe_hyperband", within: float | None = None) -> dict:
    """The issue's target for a method (keys say "a", whichever it is): reach the final best
    of (c) within ``within`` epochs (default: a third of the epoch budget) on every seed, and
    be no worse than (d) at equal epochs (mean over seeds, at every epoch count from the first
    finished trial, or from ``within`` when given, to the budget)."""
    m, grid = figures["methods"], figures["epochs_grid"]
    budget = figures["task"]["epoch_budget"]
    third = budget / 3 if within is None else within
    start = 0 if within is None else within
    reach = m[method]["epochs_to_reach_final_best_of_c"]
    a, d = (np.array(m[k]["anytime_mean"]) for k in (method, "d_kerastuner_hyperband"))
    span = [i for i, e in enumerate(grid) if start <= e <= budget and a[i] == a[i] and d[i] == d[i]]
    gap = a[span] - d[span]
    return {
        "third_of_budget": third,
        "a_epochs_to_reach_final_best_of_c": reach,
        "a_reaches_c_within_a_third": all(e is not None and e <= third for e in reach),
        "a_minus_d_at_equal_epochs_worst": float(gap.min()),
        "a_minus_d_at_equal_epochs_mean": float(gap.mean()),
        "a_minus_d_at_budget": float(a[grid.index(budget)] - d[grid.index(budget)]),
        "a_not_worse_than_d": bool(gap.min() >= 0),
    }


def plot(figures: dict, path: Path) -> None:
    import plotly.colors
    import plotly.graph_objects as go

    from search.plots import PLOTLY_JS, write_plotly_js

    fig = go.Figure()
    grid = figures["epochs_grid"]
    colours = plotly.colors.qualitative.D3  # 10 colours: one per method, never run short
    ci = figures.get("against_kerastuner", {}).get("methods", {})
    for (method, m), colour in zip(figures["methods"].items(), colours):
        low, high = m["anytime_min"], m["anytime_max"]
        if method in ci and ci[method]["seeds"] > 1:  # the 95% interval of the mean
            low, high = ci[method]["ci_low"], ci[method]["ci_high"]
        fig.add_trace(
            go.Scatter(
                x=grid + grid[::-1],
                y=high + low[::-1],
                fill="toself",
                fillcolor=colour,
                opacity=0.15,
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(go.Scatter(x=grid, y=m["anytime_mean"], name=method, line={"color": colour}))
    fig.add_hline(
        y=figures["final_best_of_c_mean"],
        line_dash="dot",
        annotation_text="final best of (c), mean",
    )
    fig.update_layout(
        title="Best validation accuracy against epochs trained (mean over seeds; bands: 95% "
        "interval of the mean where KerasTuner and random search ran, else min-max)",
        xaxis_title="epochs trained (cumulative)",
        yaxis_title="best validation accuracy so far",
    )
    write_plotly_js(path.parent)
    fig.write_html(path, include_plotlyjs=PLOTLY_JS)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
