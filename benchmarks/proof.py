"""Does searching pay? A study's pick beside a hand-tuned baseline, and what each stage cost.

Reads what the pipeline left and trains nothing: the study's storage (the search), its
``final/race/`` runs (the race), its ``final/seed-*/`` runs and their test figures (the
retrain, after ``cifar10_test.py --study NAME``), and the baseline's run folders, trained and
tested the same way (``cifar10_train.py --preset P --full ...``, ``cifar10_test.py --run``).
Compute is counted in epochs of 50,000 images (a 10,000-image epoch is 0.2) and in wall
seconds of training on the machine that ran it; the search counts its cooldown branches.
Beside them, what the study's first rung says of each dimension (``first_rung``: Spearman of
the rung's score with each numeric parameter, and the categorical choices drawn), from its
``trials.csv``.

Usage: ``CIFAR10_RESULTS=results/reference python benchmarks/proof.py --study seedplus
--baseline results/reference/seed-full-10-s0 --baseline results/reference/seed-full-10-s1
[--metric accuracy|accuracy_tta_flip|accuracy_tta_flip_shift] [--baseline-metric M]``
(``--baseline-metric`` where the two are tested differently: a pick whose race chose TTA
(``--choose-tta``) against a baseline tested plain; the pick's plain figure is kept beside
it, so the TTA's share of the gap stays visible); writes
``results/benchmarks/proof_NAME.json`` and prints the README's row. A stage not run yet is
reported as missing, so it can be run part-way through.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import write  # noqa: E402

FULL = 50_000  # a compute unit: one epoch of all training images
METRICS = ("accuracy", "accuracy_tta_flip", "accuracy_tta_flip_shift")


def search_stage(trials, train_images: int) -> dict:
    """The search's compute: every trial's epochs (cooldown branches included) at the
    study's training-set size, and its wall seconds."""
    from search.record import epochs_trained

    return {
        "trials": len(trials),
        "epochs_of_50k": round(epochs_trained(trials) * train_images / FULL, 2),
        "seconds": round(sum(float(t.user_attrs.get("seconds", 0)) for t in trials), 1),
    }


def runs_stage(runs: list[Path]) -> dict | None:
    """The compute of trained run folders (their ``train.json``); None if there is none."""
    done = [json.loads((r / "train.json").read_text()) for r in runs if (r / "train.json").exists()]
    if not done:
        return None
    return {
        "runs": len(done),
        "epochs_of_50k": round(sum(d["epochs"] * d["train_images"] / FULL for d in done), 2),
        "seconds": round(sum(d["train_seconds"] for d in done), 1),
    }


def tested(runs: list[Path], metric: str) -> dict | None:
    """Test figures of run folders tested once (``test_metrics.json``): the metric per run,
    its mean and standard deviation, parameters and batch-1 latency; None if none is tested."""
    docs = [json.loads((r / "test_metrics.json").read_text())
            for r in runs if (r / "test_metrics.json").exists()]  # fmt: skip
    values = [d[metric] for d in docs if d.get(metric) is not None]
    if not values:
        return None
    return {
        "runs": [d["run"] for d in docs],
        "metric": metric,
        "values": values,
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "params": docs[0]["params"],
        "latency_p50_ms": [round(d["latency_p50_ms"], 2) for d in docs],
    }


def first_rung(trials_csv: Path) -> dict | None:
    """What the study's first rung says of each searched dimension: over its configs (one row
    each, the segment that ended at the lowest rung), the Spearman correlation of the score with
    each numeric parameter, and how often each choice of a categorical one was drawn."""
    import pandas as pd
    from scipy.stats import spearmanr

    if not trials_csv.exists():
        return None
    rows = pd.read_csv(trials_csv)
    rung = rows["rung"].min()  # --first-rung: 1 in seedplus, 2 in fastwsd
    rows = rows[(rows["rung"] == rung) & rows["value"].notna()]
    out: dict = {"rung": None if pd.isna(rung) else int(rung), "configs": len(rows),
                 "spearman": {}, "drawn": {}}  # fmt: skip
    for col in (c for c in rows.columns if c.startswith("param_")):
        values = rows[col]
        if pd.api.types.is_numeric_dtype(values):
            known = values.notna()
            if known.sum() > 2 and values[known].nunique() > 1:
                rho = spearmanr(values[known], rows["value"][known]).statistic
                out["spearman"][col[6:]] = round(float(rho), 3)
        else:
            out["drawn"][col[6:]] = values.value_counts().to_dict()
    return out


def total(stages: dict) -> dict:
    done = [s for s in stages.values() if s]
    return {k: round(sum(s[k] for s in done), 2) for k in ("epochs_of_50k", "seconds")}


def row(name: str, figures: dict) -> str:
    """The README's row: baseline and pick side by side, and the compute."""

    def acc(t):
        return "not tested yet" if t is None else (
            f"{t['mean']:.4f} ± {t['std']:.4f} ({len(t['values'])} seeds), {t['params']:,} params, "
            f"p50 {' / '.join(map(str, t['latency_p50_ms']))} ms")  # fmt: skip

    s = figures["stages"]
    cost = "; ".join(
        f"{k} {v['epochs_of_50k']} epochs, {v['seconds'] / 60:.0f} min" if v else f"{k} not run"
        for k, v in s.items()
    )
    gap = figures.get("pick_minus_baseline")
    gap = "" if gap is None else f" | {100 * gap:+.2f} points"
    base, pick = acc(figures["baseline"]), acc(figures["pick"])
    if figures.get("baseline_metric", figures["metric"]) != figures["metric"]:
        base += f" ({figures['baseline_metric']})"
        plain = figures.get("pick_plain")
        pick += f" ({figures['metric']}" + (f"; plain {plain['mean']:.4f})" if plain else ")")
    return f"| {name} | {base} | {pick}{gap} | {cost} |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", required=True)
    p.add_argument("--storage")
    p.add_argument("--baseline", action="append", type=Path, default=[], metavar="RUN")
    p.add_argument("--metric", choices=METRICS, default="accuracy")
    p.add_argument("--baseline-metric", choices=METRICS, help="the baseline's (default --metric)")
    p.add_argument("--name", help="the JSON's name (default proof_STUDY)")
    a = p.parse_args(argv)

    from search.cli.common import configure_libraries

    configure_libraries()  # the libraries' notices, as the command line hides them
    from search.final import final_dir
    from search.race_report import rung_check, search_score
    from search.settings import load

    study, settings = load(a.study, a.storage)
    final = final_dir(a.study)
    race = sorted(final.glob("race/trial-*"))
    seeds = sorted(final.glob("seed-*"))
    stages = {
        "search": search_stage(
            study.get_trials(deepcopy=False), settings.train_size or FULL - settings.val_size
        ),
        "race": runs_stage(race),
        "retrain": runs_stage(seeds),
    }
    baseline_metric = a.baseline_metric or a.metric
    pick, base = tested(seeds, a.metric), tested(a.baseline, baseline_metric)
    race_doc = final / "race" / "race.json"
    raced = json.loads(race_doc.read_text()) if race_doc.exists() else None
    if raced:  # what the search made of each entrant (a race older than its record of it)
        trials = study.get_trials(deepcopy=False)
        entered = raced["candidates"]
        raced["candidates"] = [{**search_score(trials[c["trial"]]), **c} for c in entered]
    figures = {
        "study": a.study,
        "space": settings.space_path,
        "metric": a.metric,
        "baseline_metric": baseline_metric,
        "stages": stages,
        "total": total(stages),
        "race": raced,
        "rung_check": rung_check(raced["candidates"], raced.get("train_images")) if raced else [],
        "pick": pick,
        "baseline": base,
        "pick_plain": tested(seeds, "accuracy") if a.metric != "accuracy" else None,
        "baseline_train": runs_stage(a.baseline),
        "pick_minus_baseline": pick["mean"] - base["mean"] if pick and base else None,
        "first_rung": first_rung(final.parent / "trials.csv"),
    }
    write(a.name or f"proof_{a.study}", figures)
    print(row(a.study, figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
