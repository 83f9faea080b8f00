"""Resident memory across many trials in one worker process: do trials leak?

Runs N small trials of a space in this process (``keras.backend.clear_session`` and a garbage
collection before each model, as the worker does) and reads the resident set size each trial
recorded at its end. Usage: ``python benchmarks/trial_memory.py [--trials 20] [--data ZIP]``.
"""

from __future__ import annotations

import argparse
import os
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
    from search import study as st
    from search.data import resolve_source
    from search.space import load_space

    space = load_space(a.space)
    s = st.Settings(
        space_path=a.space,
        space_text=space.text,
        trials=a.trials,
        epochs=1,
        train_size=a.train_size,
        val_size=500,
        pruner="none",
        sampler="random",
    )
    st.create_or_resume("memory", None, s, given=set())
    t0 = time.perf_counter()
    st.run_worker("memory", None, resolve_source(a.data))
    trials = st.load("memory")[0].get_trials()
    rss = [t.user_attrs["rss_mb"] for t in trials]
    figures = {
        "trials": len(trials),
        "train_images": a.train_size,
        "rss_mb_per_trial": rss,
        "rss_after_trial_2_mb": rss[1],
        "rss_after_last_trial_mb": rss[-1],
        "growth_from_trial_2_mb": rss[-1] - rss[1],
        "limit_mb": 300,
        "wall_seconds": time.perf_counter() - t0,
        "how": "one process; keras.backend.clear_session(free_memory=True) and gc.collect() "
        "before each trial's model",
    }
    print(
        f"rss after trial 2: {rss[1]:.0f} MB, after trial {len(rss)}: {rss[-1]:.0f} MB "
        f"(growth {rss[-1] - rss[1]:+.0f} MB)"
    )
    write("trial_memory", figures)


if __name__ == "__main__":
    main()
