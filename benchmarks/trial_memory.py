"""Resident memory across many trials in one worker process: do trials leak?

Runs N small trials of a space twice and reads the resident set size each trial recorded at its
end: (1) in this process through ``run_worker`` (``keras.backend.clear_session`` and a garbage
collection before each model, no restarts), which shows TensorFlow's per-trial growth; (2) as
``cifar10-search start`` runs them, a worker that restarts itself once it has grown by
``CIFAR10_RECYCLE_MB`` (default 200). Usage:
``python benchmarks/trial_memory.py [--trials 20] [--data ZIP]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REAL_ZIP, write  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=str(REAL_ZIP))
    p.add_argument("--space", default=str(Path(__file__).resolve().parents[1] / "spaces/seed.toml"))
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--train-size", type=int, default=1000)
    a = p.parse_args()
    os.environ["CIFAR10_RESULTS"] = tempfile.mkdtemp(prefix="memory-bench-")
    from search.data import resolve_source
    from search.env import recycle_mb
    from search.record import Attr
    from search.settings import Settings, create_or_resume, load
    from search.worker import run_worker

    s = Settings.from_options(
        space=a.space,
        trials=a.trials,
        epochs=1,
        train_size=a.train_size,
        val_size=500,
        pruner="none",
        sampler="random",
    )
    create_or_resume("memory", None, s, given=set())
    t0 = time.perf_counter()
    run_worker("memory", None, resolve_source(a.data))
    inproc = [t.user_attrs[Attr.RSS_MB] for t in load("memory")[0].get_trials()]
    t1 = time.perf_counter()
    cmd = [sys.executable, "-m", "search.cli", "start", "--study", "memory-cli", "--space",
           a.space, "--trials", str(a.trials), "--epochs", "1", "--train-size",
           str(a.train_size), "--val-size", "500", "--pruner", "none", "--sampler", "random",
           "--data", a.data, "--no-plots"]  # fmt: skip
    subprocess.run(cmd, check=True)
    trials = load("memory-cli")[0].get_trials()
    cli = [t.user_attrs[Attr.RSS_MB] for t in trials]
    figures = {
        "trials": len(trials),
        "train_images": a.train_size,
        "in_process": {
            "how": "one process, no restarts; keras.backend.clear_session(free_memory=True) "
            "and gc.collect() before each trial's model",
            "rss_mb_per_trial": inproc,
            "growth_from_trial_2_mb": inproc[-1] - inproc[1],
            "growth_per_trial_mb": (inproc[-1] - inproc[1]) / (len(inproc) - 2),
            "wall_seconds": t1 - t0,
        },
        "cli_worker": {
            "how": "cifar10-search start: the worker restarts itself (os.execv) between trials "
            "once it holds RECYCLE_MB more than after its first trial",
            "recycle_mb": recycle_mb(),
            "rss_mb_per_trial": cli,
            "restarts": max(t.user_attrs[Attr.RESTARTS] for t in trials),
            "growth_from_trial_2_mb": cli[-1] - cli[1],
            "max_above_trial_2_mb": max(cli[1:]) - cli[1],
            "wall_seconds": time.perf_counter() - t1,
        },
        "limit_mb": 300,
    }
    for k in ("in_process", "cli_worker"):
        f = figures[k]
        print(f"{k}: growth from trial 2 to trial {len(trials)}: "
              f"{f['growth_from_trial_2_mb']:+.0f} MB")  # fmt: skip
    write("trial_memory", figures)


if __name__ == "__main__":
    main()
