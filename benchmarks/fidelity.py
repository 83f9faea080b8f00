"""Fidelity: does a rung's score rank configs as the full run does, under one-cycle rungs and
under wsd cooldown-branch rungs?

A pool of configs of a space (its base config first, then draws of Optuna's random sampler
with a fixed seed), each trained to the study's full epochs twice on the same split: (1) as
the space has it (the fast space's one-cycle schedule), straight through: its score at a
rung is its validation accuracy after that epoch, what ``--pruner promote`` ranks today;
(2) with ``schedule = "wsd"``, through the promote path itself (paused at each rung, scored
on a cooldown branch, resumed from the checkpoint taken before the branch): its score at a
rung is the branch's. Figures: Spearman's rank correlation between each rung's score and the
full-length score, the top-3 overlap, the base config's rank at each; the wsd run's full
length against one-cycle's; how many draws beat the base at full length.

The pool is an Optuna journal (one study per schedule; trial attributes ``index``,
``rung_values``, ``epochs``, ``cooldown_epochs``; intermediate values: each epoch's validation
accuracy on the trunk), resumable config by config, readable by ``benchmarks/replay.py``.

Usage: ``python benchmarks/fidelity.py [--configs 16] [--train-size 8000] [--val-size 4000]
[--epochs 6] [--first-rung 2] [--eta 3] [--cooldown 0.2] [--prior uniform|base]
[--schedules onecycle,wsd] [--name fidelity] [--report-only]``. With ``--prior base`` the draws
come from the prior near the base config (``--prior base`` of a study): how many of them beat
the base at full length, against the uniform pool's count, is the prior's first measure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import OUT, REAL_ZIP, write  # noqa: E402

SCHEDULES = ("onecycle", "wsd")


def draws(space, n: int, seed: int, prior: str = "uniform") -> list[dict]:
    """The base config's point, then ``n`` random draws of the space (no training): uniform,
    or with ``prior="base"`` from the prior near the base config (``search.prior``)."""
    import optuna

    from search.prior import NearBase

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.RandomSampler(seed=seed)
    if prior == "base":
        sampler = NearBase(sampler, space.base_point(), startup=n + 1, seed=seed)
    study = optuna.create_study(sampler=sampler)
    out = [space.base_point()]
    for _ in range(n):
        t = study.ask()
        out.append(space.suggest(t))
        study.tell(t, 0.0)
    return out


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""

    def ranks(x):
        x = np.asarray(x, dtype=float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):  # ties share their mean rank
            r[x == v] = r[x == v].mean()
        return r

    if len(a) < 3:
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def rank_of(values: list[float], i: int) -> int:
    """1-based rank of entry ``i`` (higher is better)."""
    return 1 + sum(v > values[i] for v in values)


def train_pool_entry(config, split, rung_list: list[int], schedule: str) -> dict:
    """Train one config to the full epochs; each rung's score and the full-length score."""
    from search.models import build_model
    from search.training import train

    curve: list[float] = []

    def hook(epoch: int, logs: dict) -> bool:  # record each epoch's score, never stop
        curve.append(float(logs.get("val_accuracy", math.nan)))
        return False

    rung_values, cooldown_steps, seconds = {}, 0, 0.0
    if schedule == "onecycle":
        model = build_model(config, whiten_images=split.x_train)
        r = train(model, config, split, on_epoch=hook, verbose=False)
        seconds, status = r.seconds, r.status
        for rung in rung_list:
            if rung <= len(curve):
                rung_values[rung] = curve[rung - 1]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            for rung in rung_list:
                model = build_model(config, whiten_images=split.x_train)
                r = train(
                    model, config, split, on_epoch=hook, verbose=False, backup_dir=tmp,
                    pause_at=rung,
                )  # fmt: skip
                seconds += r.seconds
                status = r.status
                if status not in ("paused", "complete"):
                    break
                cooldown_steps += r.cooldown_steps
                rung_values[rung] = r.rung_value if r.rung_value is not None else curve[-1]
    steps = math.ceil(len(split.x_train) / config.batch_size)
    return {
        "status": status,
        "curve": curve,
        "rung_values": {str(k): v for k, v in rung_values.items()},
        "full": curve[-1] if status == "complete" and curve else math.nan,
        "cooldown_epochs": round(cooldown_steps / steps, 4),
        "train_seconds": round(seconds, 1),
        "params": model.count_params(),
    }


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def open_pool(path: Path, schedules=SCHEDULES):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    return {
        s: optuna.create_study(
            study_name=s, storage=storage, direction="maximize", load_if_exists=True
        )
        for s in schedules
    }


def done_entries(study) -> dict[int, dict]:
    return {
        int(t.user_attrs["index"]): t.user_attrs["result"]
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE" and "index" in t.user_attrs
    }


def figures(results: dict[str, dict[int, dict]], rung_list: list[int]) -> dict:
    """The rank figures over the configs done under both schedules."""
    schedules = list(results)
    both = sorted(set.intersection(*(set(results[s]) for s in schedules)))
    out: dict = {"configs_done": len(both), "rungs": rung_list}
    ok = [
        i for i in both
        if all(math.isfinite(results[s][i]["full"]) for s in schedules)
    ]  # fmt: skip
    out["configs_finite"] = len(ok)
    for s in schedules:
        full = [results[s][i]["full"] for i in ok]
        per_rung = {}
        for rung in rung_list[:-1]:
            score = [results[s][i]["rung_values"].get(str(rung), math.nan) for i in ok]
            score = [v if math.isfinite(v) else -1.0 for v in score]
            top_r = set(np.argsort(score)[::-1][:3])
            top_f = set(np.argsort(full)[::-1][:3])
            per_rung[str(rung)] = {
                "spearman_vs_full": round(spearman(score, full), 4),
                "top3_overlap": len(top_r & top_f),
                "base_rank": rank_of(score, ok.index(0)) if 0 in ok else None,
            }
        out[s] = {
            "per_rung": per_rung,
            "base_rank_full": rank_of(full, ok.index(0)) if 0 in ok else None,
            "full_mean": round(float(np.mean(full)), 4) if full else None,
            "base_full": results[s][0]["full"] if 0 in results[s] else None,
            "draws_beating_base": sum(v > full[ok.index(0)] for v in full) if 0 in ok else None,
            "epochs_per_config": round(
                float(
                    np.mean(
                        [len(results[s][i]["curve"]) + results[s][i]["cooldown_epochs"] for i in ok]
                    )
                ),
                3,
            )
            if ok
            else None,  # fmt: skip
        }
    if ok and len(schedules) == 2:  # does the wsd rung predict one-cycle's full run?
        first = str(rung_list[0])
        w = [results["wsd"][i]["rung_values"].get(first, -1.0) for i in ok]
        o = [results["onecycle"][i]["full"] for i in ok]
        out["wsd_first_rung_vs_onecycle_full_spearman"] = round(spearman(w, o), 4)
        out["wsd_full_vs_onecycle_full_spearman"] = round(
            spearman([results["wsd"][i]["full"] for i in ok], o), 4
        )
    out["per_config"] = {
        str(i): {s: {k: results[s][i][k] for k in ("full", "rung_values", "params")}
                 for s in schedules if i in results[s]}
        for i in sorted(set.union(*(set(results[s]) for s in schedules)))
    }  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="fast")
    p.add_argument("--configs", type=int, default=16, help="random draws besides the base")
    p.add_argument("--train-size", type=int, default=8000)
    p.add_argument("--val-size", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--first-rung", type=int, default=2)
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--cooldown", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0, help="the random sampler's seed")
    p.add_argument(
        "--prior",
        choices=("uniform", "base"),
        default="uniform",
        help="draw the configs uniformly, or near the base config (search.prior)",
    )
    p.add_argument("--schedules", default=",".join(SCHEDULES), help="comma-separated")
    p.add_argument("--name", default="fidelity", help="JSON file name, without .json")
    p.add_argument("--data", default=str(REAL_ZIP))
    p.add_argument("--pool", default=None, help="journal file (default: under results/)")
    p.add_argument("--report-only", action="store_true", help="figures of what is done")
    a = p.parse_args(argv)

    import optuna

    from search.data import resolve_source, search_guard, split_for
    from search.schedulers.asha import rungs
    from search.settings import resolve_space_path
    from search.space import load_space

    space = load_space(resolve_space_path(a.space))
    name = f"{a.space}-{a.train_size // 1000}k{a.val_size // 1000}k-{a.epochs}ep-s{a.seed}"
    name += "-prior" if a.prior == "base" else ""
    schedules = a.schedules.split(",")
    if not set(schedules) <= set(SCHEDULES) or not schedules:
        p.error(f"--schedules: choose from {', '.join(SCHEDULES)}")
    pool = Path(a.pool) if a.pool else OUT / "pools" / f"{name}.log"
    rung_list = rungs(a.first_rung, a.eta, a.epochs)
    base = space.base.replace(epochs=a.epochs, train_size=a.train_size, val_size=a.val_size)
    points = draws(space, a.configs, a.seed, a.prior)
    studies = open_pool(pool, schedules)
    if not a.report_only:
        with search_guard():
            split = split_for(base, resolve_source(a.data))
            for i, point in enumerate(points):
                config = space.apply(point, base)
                for s in schedules:
                    if i in done_entries(studies[s]):
                        continue
                    cfg = config if s == "onecycle" else config.replace(
                        schedule="wsd", cooldown=a.cooldown
                    )  # fmt: skip
                    t = studies[s].ask()
                    res = train_pool_entry(cfg, split, rung_list, s)
                    for e, v in enumerate(res["curve"], 1):
                        if math.isfinite(v):
                            t.report(v, e)
                    t.set_user_attr("index", i)
                    t.set_user_attr("params_point", json.dumps(point, sort_keys=True))
                    t.set_user_attr("config", cfg.to_dict())
                    t.set_user_attr("epochs", len(res["curve"]))
                    t.set_user_attr("cooldown_epochs", res["cooldown_epochs"])
                    t.set_user_attr("result", res)
                    full = res["full"]
                    if math.isfinite(full):
                        studies[s].tell(t, full)
                    else:  # diverged or stopped: no full-length score
                        studies[s].tell(t, state=optuna.trial.TrialState.FAIL)
                    print(
                        f"config {i} {s}: rungs {res['rung_values']} full {full:.4f} "
                        f"({res['train_seconds']:.0f} s)", flush=True,
                    )  # fmt: skip
    results = {s: done_entries(studies[s]) for s in schedules}
    figs = figures(results, rung_list)
    figs["task"] = {
        "space": a.space, "train_size": a.train_size, "val_size": a.val_size,
        "epochs": a.epochs, "rungs": rung_list, "cooldown": a.cooldown, "seed": a.seed,
        "configs_planned": len(points), "pool": _shown(pool), "prior": a.prior,
    }  # fmt: skip
    write(a.name, figs)


if __name__ == "__main__":
    main()
