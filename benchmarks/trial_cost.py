"""Where a short trial's time goes, and trials per hour of the quick study.

Part 1, the breakdown: a study of one config (the space's base, trial 0) run through the real
worker (``run_worker``) with timers around its steps: building the model (whitening
included), the budget check (latency timing), compiling, tracing the train and test steps
(the first call into each, less a typical call), the epochs' training batches and validation
(:class:`~search.callbacks.EpochTimer`), the storage's writes, ``fit``'s own set-up and
callbacks, and the rest (the sampler, the trial's bookkeeping). Spaces and fidelities as the search
uses them: ``spaces/seed.toml`` as the quick study (3,000 / 1,000 images, 3 epochs) and
``spaces/fast.toml`` at the first rung of the fast30 study (10,000 / 5,000, 2 epochs).

Part 2, ``--quick-rounds N``: ``cifar10-search start --quick`` run N times from this tree and
N times from ``--before REV`` (a git worktree of an older commit), alternating, each in its
own results folder: trials per hour, before and after, in one run.

Usage: ``python benchmarks/trial_cost.py [--data ZIP] [--quick-rounds 2 --before REV]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REAL_ZIP, write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "seed": dict(space="seed", epochs=3, train_size=3000, val_size=1000),
    "fast": dict(space="fast", epochs=2, train_size=10000, val_size=5000),
}
STORAGE_WRITES = (
    "create_new_trial",
    "set_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
)


class Stopwatch:
    """Seconds per named step, summed; a step inside itself (a storage call making another)
    counts once."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._open: set[str] = set()

    @contextlib.contextmanager
    def __call__(self, name: str):
        if name in self._open:
            yield
            return
        self._open.add(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0
            self._open.discard(name)

    def wrap(self, owner, attr: str, name: str) -> None:
        fn = getattr(owner, attr)

        def timed(*a, **k):
            with self(name):
                return fn(*a, **k)

        setattr(owner, attr, timed)


def call_times():
    """A callback timing each call into the compiled train and test functions: the first
    call of each traces, so tracing is the first call's time less a later call's."""
    import keras

    class CallTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.train, self.test = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.train.append(time.perf_counter() - self.t0)

        def on_test_batch_begin(self, batch, logs=None):
            self.t0 = time.perf_counter()

        def on_test_batch_end(self, batch, logs=None):
            self.test.append(time.perf_counter() - self.t0)

    return CallTimes()


def breakdown(case: str, data: str) -> dict:
    """One trial of ``case`` through the real worker, timed by step."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from search import budget, objective
    from search.callbacks import EpochTimer
    from search.data import resolve_source
    from search.settings import Settings, create_or_resume
    from search.training import compile_for_training, fit, steps_per_epoch
    from search.worker import run_worker

    sw = Stopwatch()
    timer, calls = EpochTimer(), call_times()

    def timed_train(model, config, split, **kw):
        with sw("compile"):
            tm = compile_for_training(model, config, steps_per_epoch(config, split))
        with sw("fit"):
            return fit(tm, config, split, callbacks=[timer, calls], **kw)

    saved = [(budget, "measure"), (objective.Objective, "_fresh_model")]
    saved += [(optuna.storages.JournalStorage, m) for m in STORAGE_WRITES]
    originals = [(o, a, getattr(o, a)) for o, a in saved]
    sw.wrap(budget, "measure", "budget")
    sw.wrap(objective.Objective, "_fresh_model", "build")
    for m in STORAGE_WRITES:
        sw.wrap(optuna.storages.JournalStorage, m, "storage")
    name = f"cost-{case}"
    try:
        s = Settings.from_options(trials=1, pruner="none", **CASES[case])
        create_or_resume(name, None, s, given=set(CASES[case]))
        t0 = time.perf_counter()
        run_worker(name, None, resolve_source(data), train=timed_train, quiet=True)
        wall = time.perf_counter() - t0
    finally:
        for o, a, fn in originals:
            setattr(o, a, fn)

    def first_less_typical(times: list[float]) -> float:  # the last call may be shorter
        return times[0] - statistics.median(times[1:-1] or times[1:])

    trace_train, trace_test = first_less_typical(calls.train), first_less_typical(calls.test)
    steps = {
        "build": sw.seconds["build"],
        "budget_check": sw.seconds["budget"],
        "compile": sw.seconds["compile"],
        "tracing_train_step": trace_train,
        "epoch_start_stalls": sum(timer.stall),
        "training_epochs": sum(timer.train) - trace_train,
        "tracing_test_step": trace_test,
        "validation": sum(timer.val) - trace_test,
        "storage_writes": sw.seconds["storage"],
    }
    fit_rest = sw.seconds["fit"] - sum(timer.stall) - sum(timer.train) - sum(timer.val)
    steps["fit_callbacks_and_setup"] = fit_rest
    steps["rest"] = wall - sum(steps.values())
    return {
        "settings": CASES[case],
        "trial_seconds": wall,
        "seconds": {k: round(v, 3) for k, v in steps.items()},
        "share": {k: round(v / wall, 3) for k, v in steps.items()},
        "train_seconds_per_epoch": [round(x, 3) for x in timer.train],
        "val_seconds_per_epoch": [round(x, 3) for x in timer.val],
    }


def quick_study(tree: Path, data: str, results: Path) -> dict:
    """``cifar10-search start --quick`` from ``tree`` into ``results``: trials and wall time."""
    from search.settings import QUICK

    env = {**os.environ, "CIFAR10_RESULTS": str(results), "CIFAR10_PROGRESS": "0"}
    env["PYTHONPATH"] = str(tree)
    cmd = [sys.executable, "-m", "search.cli", "start", "--quick", "--data", data, "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    n = QUICK["trials"]
    return {"seconds": round(wall, 1), "trials": n, "trials_per_hour": round(n * 3600 / wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REAL_ZIP))
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--quick-rounds", type=int, default=0, help="quick studies per side (0: none)")
    p.add_argument("--before", default=None, help="git revision of the 'before' side")
    p.add_argument("--name", default="trial_cost", help="the JSON's name in results/benchmarks")
    a = p.parse_args()
    if a.quick_rounds and a.before is None:  # before any measurement, so none is lost
        p.error("--quick-rounds needs --before REV (the commit to compare with)")
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CIFAR10_RESULTS"] = str(Path(tmp) / "results")
        os.environ.setdefault("CIFAR10_CACHE", str(ROOT / "results" / "cache"))  # decoded once
        for case in a.cases:
            figures[case] = breakdown(case, a.data)
            print(case, figures[case]["trial_seconds"], figures[case]["seconds"], flush=True)
        if a.quick_rounds:
            before = Path(tmp) / "before"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(before), a.before],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            try:
                runs: dict[str, list[dict]] = {"before": [], "after": []}
                for r in range(a.quick_rounds):
                    for side, tree in (("before", before), ("after", ROOT)):
                        out = Path(tmp) / f"{side}-{r}"
                        runs[side].append(quick_study(tree, a.data, out))
                        print(f"round {r + 1}: {side} {runs[side][-1]}", flush=True)
                figures["quick_study"] = {
                    "before_rev": a.before,
                    "runs": runs,
                    **{
                        f"{side}_trials_per_hour": statistics.median(
                            x["trials_per_hour"] for x in runs[side]
                        )
                        for side in runs
                    },
                }
            finally:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False
                )
    write(a.name, figures)


if __name__ == "__main__":
    main()
