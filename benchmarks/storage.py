"""Storage overhead per trial, and trials per hour with 1 and 2 local workers.

1. Overhead: a trial without training (ask, sample the space, ten user attributes, eight
   reported epochs with a pruning check each, tell) on the local journal file and on
   PostgreSQL, alternating so noise falls on both.
2. Throughput: tiny real trials (the tiny test space, synthetic images, one epoch) run by
   ``start --jobs 1`` and ``--jobs 2``.

Usage: ``python benchmarks/storage.py [--pg postgresql://root@127.0.0.1:5432] [--trials 40]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import write  # noqa: E402

TINY_SPACE = ROOT / "tests" / "spaces" / "tiny.toml"


def overhead_ms(url: str, name: str, n: int) -> list[float]:
    import optuna

    from search.space import load_space
    from search.storage import open_storage

    space = load_space(TINY_SPACE)
    storage = open_storage(url)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        pruner=optuna.pruners.HyperbandPruner(max_resource=8),
    )
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        trial = study.ask()
        space.suggest(trial)
        for k in range(10):
            trial.set_user_attr(f"attr{k}", k)
        for epoch in range(1, 9):
            trial.report(0.1 * epoch, epoch)
            trial.should_prune()
        study.tell(trial, 0.5 + i * 1e-4)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def trials_per_hour(jobs: int, data: Path, trials: int, results: Path) -> float:
    env = {**os.environ, "CIFAR10_RESULTS": str(results)}
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "search.cli",
            "start",
            "--study",
            f"jobs{jobs}",
            "--space",
            str(TINY_SPACE),
            "--trials",
            str(trials),
            "--epochs",
            "1",
            "--train-size",
            "400",
            "--val-size",
            "100",
            "--jobs",
            str(jobs),
            "--data",
            str(data),
            "--no-plots",
            "--no-enqueue-seed",
        ],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    return trials / (time.perf_counter() - t0) * 3600


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pg", default="postgresql://root@127.0.0.1:5432")
    p.add_argument("--trials", type=int, default=40, help="overhead trials per storage")
    p.add_argument("--tiny-trials", type=int, default=12)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="storage-bench-"))
    os.environ["CIFAR10_RESULTS"] = str(tmp / "results")
    import psycopg

    db = f"cifar10_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(f"{a.pg}/test", autocommit=True)
    admin.execute(f'CREATE DATABASE "{db}"')
    try:
        times = {"journal_file": [], "postgresql": []}
        for r in range(2):
            times["journal_file"] += overhead_ms(str(tmp / "j.log"), f"o{r}", a.trials // 2)
            times["postgresql"] += overhead_ms(f"{a.pg}/{db}", f"o{r}", a.trials // 2)
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s", (db,)
        )
        admin.execute(f'DROP DATABASE "{db}"')
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_arrays

    x, y, xt, yt = make_arrays(600, 100)
    data = tmp / "tiny.npz"
    np.savez(data, x_train=x, y_train=y, x_test=xt, y_test=yt)
    tph = {jobs: trials_per_hour(jobs, data, a.tiny_trials, tmp / f"r{jobs}") for jobs in (1, 2)}
    figures = {
        "overhead_ms_per_trial_median": {k: float(np.median(v)) for k, v in times.items()},
        "overhead_ms_per_trial_p90": {k: float(np.percentile(v, 90)) for k, v in times.items()},
        "overhead_trials": a.trials,
        "tiny_trial": "tests/spaces/tiny.toml, 400 synthetic images, 1 epoch",
        "trials_per_hour": {"1_worker": tph[1], "2_workers": tph[2]},
        "ratio_2_to_1_workers": tph[2] / tph[1],
    }
    print(figures)
    write("storage", figures)


if __name__ == "__main__":
    main()
