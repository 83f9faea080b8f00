"""Rung fidelity against the race: does a rung's score order the raced configs as their
full-length race runs did?

``benchmarks/fidelity.py`` compared rungs with a "full" run on the study's own small split
(8,000 images, 6 epochs); its Spearman 0.76 did not carry to the pipelines, whose studies
ranked the hand-tuned config last among the raced ones while the race (45,000 images, 10 or
12 epochs) put it first. Here the reference is the race itself: each config a study raced,
its race score (validation, 5,000 images, the score the race ranked by), and beside it the
score each kind of rung gives the same config:

- ``small``: the studies' rungs: wsd cooldown branches on a 10,000-image training subset
  (``--small-split``), at ``--small-rungs`` of a ``--small-epochs`` schedule;
- ``race_split``: wsd cooldown branches on the race's own split (all 45,000 training images,
  the race's 5,000 validation images), at ``--rungs`` of a schedule as long as the race's:
  what a study run with ``--train-size 45000 --epochs <race epochs> --set schedule=wsd``
  scores at its rungs;
- ``race_curve``: the race run's own validation accuracy after each epoch, straight through
  (free: read from its ``history.csv``; one-cycle configs are mid-schedule there, wsd ones
  in their stable phase, before the decay that a cooldown branch adds).

Figures per group of studies over one space (configs deduplicated: the preset raced in two
studies counts once, its race scores averaged): per kind and rung, the base config's rank,
Spearman with the race score, and the pairs of configs the rung orders as the race did. Few
configs (4 per space): read the pairs and the base's rank, not the Spearman's decimals.

Every rung run is kept as it ends in ``results/benchmarks/rung_fidelity_runs.json``; a rerun
skips what is there. Trains on the training split only (search guard on).

Usage: ``python benchmarks/rung_fidelity.py fast:fasthf,fastwsd seed:seedplus
[--results results/reference] [--rungs 1,3] [--small-split 10000,5000] [--small-epochs 6]
[--small-rungs 1,2] [--kinds small,race_split] [--report-only]``
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import OUT, REAL_ZIP, write  # noqa: E402
from benchmarks.fidelity import rank_of, spearman, train_pool_entry  # noqa: E402

KINDS = ("small", "race_split")
RUNS = OUT / "rung_fidelity_runs.json"


def config_key(config: dict) -> str:
    """A config's identity across studies: everything but the run-specific fields."""
    keep = {k: v for k, v in config.items() if k not in ("seed", "train_size", "val_size")}
    return hashlib.sha1(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


def raced(results: Path, studies: list[str]) -> list[dict]:
    """The configs the studies raced: config, race score(s), base flag, race curve."""
    by_key: dict[str, dict] = {}
    for name in studies:
        race_dir = results / name / "final" / "race"
        doc = json.loads((race_dir / "race.json").read_text())
        for c in doc["candidates"]:
            run = race_dir / f"trial-{c['trial']}"
            config = json.loads((run / "config.json").read_text())
            with open(run / "history.csv", newline="") as f:
                curve = [float(r["val_accuracy"]) for r in csv.DictReader(f)]
            key = config_key(config)
            entry = by_key.setdefault(
                key,
                {"key": key, "config": config, "base": False, "scores": [], "names": [],
                 "curve": curve},
            )  # fmt: skip
            entry["base"] |= bool(c.get("base"))
            entry["scores"].append(float(c["score"]))
            entry["names"].append(f"{name}#{c['trial']}")
    out = list(by_key.values())
    for e in out:
        e["race"] = sum(e["scores"]) / len(e["scores"])
    return out


def pairs_agreeing(score: list[float], ref: list[float]) -> tuple[int, int]:
    """Pairs of configs ``score`` orders as ``ref`` does, of the pairs ``ref`` does not tie."""
    agree = total = 0
    for i in range(len(ref)):
        for j in range(i + 1, len(ref)):
            if ref[i] == ref[j]:
                continue
            total += 1
            agree += (score[i] - score[j]) * (ref[i] - ref[j]) > 0
    return agree, total


def rungs_of(kind: str, a) -> list[int]:
    """The epochs a kind of rung is scored at."""
    return a.small_rungs if kind == "small" else a.rungs


def rung_config(config: dict, kind: str, a):
    """The config as a rung of ``kind`` trains it: wsd, on the kind's split and length."""
    from search.config import Config

    cfg = Config.from_dict(config).replace(schedule="wsd", cooldown=a.cooldown)
    if kind == "small":
        train_size, val_size = a.small_split
        return cfg.replace(train_size=train_size, val_size=val_size, epochs=a.small_epochs)
    return cfg  # the race's split (train_size None: all but the validation images) and length


def group_figures(entries: list[dict], runs: dict, a) -> dict:
    ref = [e["race"] for e in entries]
    base = next((i for i, e in enumerate(entries) if e["base"]), None)
    out: dict = {
        "configs": [
            {"raced_as": e["names"], "base": e["base"], "race_score": round(e["race"], 4)}
            for e in entries
        ],
        "base_rank_race": rank_of(ref, base) if base is not None else None,
    }

    def judge(score: list[float]) -> dict:
        agree, total = pairs_agreeing(score, ref)
        return {
            "scores": [round(v, 4) for v in score],
            "base_rank": rank_of(score, base) if base is not None else None,
            "pairs_as_race": f"{agree} of {total}",
            "spearman_vs_race": round(spearman(score, ref), 4),
        }

    kinds: dict = {}
    for kind in KINDS:
        per_rung = {}
        for rung in rungs_of(kind, a):
            got = [runs.get(f"{kind}|{e['key']}", {}).get("rung_values", {}).get(str(rung))
                   for e in entries]  # fmt: skip
            if all(v is not None for v in got):
                per_rung[str(rung)] = judge([v if math.isfinite(v) else -1.0 for v in got])
        kinds[kind] = per_rung
    kinds["race_curve"] = {  # every epoch: free, and it shows from when on they agree
        str(r): judge([e["curve"][r - 1] for e in entries])
        for r in range(1, min(len(e["curve"]) for e in entries) + 1)
    }
    out["kinds"] = kinds
    seconds = {
        kind: round(sum(runs.get(f"{kind}|{e['key']}", {}).get("train_seconds", 0.0)
                        for e in entries), 1)
        for kind in KINDS
    }  # fmt: skip
    out["train_seconds"] = seconds
    return out


def main(argv: list[str] | None = None) -> None:
    def ints(s: str) -> list[int]:
        return [int(x) for x in s.split(",")]

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("groups", nargs="+", metavar="SPACE:STUDY[,STUDY]")
    p.add_argument("--results", type=Path, default=ROOT / "results" / "reference")
    p.add_argument("--rungs", type=ints, default=[1, 3], help="race-split rungs (epochs)")
    p.add_argument("--small-split", type=ints, default=[10000, 5000], help="TRAIN,VAL")
    p.add_argument("--small-epochs", type=int, default=6)
    p.add_argument("--small-rungs", type=ints, default=[1, 2])
    p.add_argument("--cooldown", type=float, default=0.2)
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated, in this order")
    p.add_argument("--data", default=str(REAL_ZIP))
    p.add_argument("--name", default="rung_fidelity")
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args(argv)
    groups = {}
    for g in a.groups:
        space, _, studies = g.partition(":")
        if not studies:
            p.error(f"{g!r}: write SPACE:STUDY[,STUDY...]")
        for name in studies.split(","):
            if not (a.results / name / "final" / "race" / "race.json").exists():
                p.error(f"study {name!r} has no race in {a.results / name / 'final' / 'race'}: "
                        f"race it first (cifar10_train.py --study {name} --race K), or name "
                        "another --results folder")  # fmt: skip
        groups[space] = raced(a.results, studies.split(","))
    kinds = a.kinds.split(",")
    if not set(kinds) <= set(KINDS):
        p.error(f"--kinds: choose from {', '.join(KINDS)}")

    runs = json.loads(RUNS.read_text()) if RUNS.exists() else {}
    if not a.report_only:
        from search.data import resolve_source, search_guard, split_for

        source = resolve_source(a.data)
        with search_guard():
            for kind in kinds:
                rung_list = rungs_of(kind, a)
                for space, entries in groups.items():
                    for e in entries:
                        key = f"{kind}|{e['key']}"
                        if key in runs:
                            continue
                        cfg = rung_config(e["config"], kind, a)
                        res = train_pool_entry(cfg, split_for(cfg, source), rung_list, "wsd")
                        runs[key] = {"space": space, "raced_as": e["names"], **res}
                        RUNS.write_text(json.dumps(runs, indent=1) + "\n")
                        print(
                            f"{space} {kind} {'/'.join(e['names'])}: rungs "
                            f"{res['rung_values']} race {e['race']:.4f} "
                            f"({res['train_seconds']:.0f} s)",
                            flush=True,
                        )
    figs = {space: group_figures(entries, runs, a) for space, entries in groups.items()}
    figs["task"] = {
        "rungs": a.rungs, "small_split": a.small_split, "small_epochs": a.small_epochs,
        "small_rungs": a.small_rungs, "cooldown": a.cooldown, "results": str(a.results),
    }  # fmt: skip
    write(a.name, figs)


if __name__ == "__main__":
    main()
