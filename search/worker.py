"""The loop that runs a study's trials until its stored target is reached, on either engine;
memory recycling; and the local worker processes that ``start --jobs K`` spawns.

To add an engine: a function with :data:`Engine`'s signature, and its name in
:func:`engine_for` and ``settings.ENGINES``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TextIO

import optuna

from search import STOP, env, progress
from search.data import Source, search_guard, split_for
from search.errors import UserError
from search.objective import Objective, Trainer, WorkerContext, rss_mb
from search.record import Attr, End
from search.report import best_text, progress_line
from search.schedulers import Next, make_scheduler
from search.settings import Settings, load, remaining
from search.storage import fail_dead_local_trials

MAX_FAILURES_IN_A_ROW = 5  # a worker whose trials keep raising stops instead of looping

# (study, settings, source, *, context, out, recycle, train): run trials to the target
Engine = Callable[..., None]


def engine_for(name: str) -> Engine:
    if name == "kerastuner":  # KerasTuner (and TensorFlow) only for a study that uses it
        from search.kt import run_kerastuner

        return run_kerastuner
    return run_optuna


def run_worker(
    name: str,
    url: str | None,
    source: Source,
    *,
    context: WorkerContext | None = None,
    out: TextIO | None = None,
    recycle: bool = False,
    train: Trainer | None = None,
    quiet: bool = False,
) -> None:
    """Run trials of the study until its stored target (trials, deadline, epoch budget) is
    reached. The search never sees the test split (:func:`~search.data.search_guard`).
    ``quiet``: no per-trial lines and no progress bars.

    With ``recycle`` (command-line workers only: it replaces the running program), the
    process restarts itself between trials once it holds ``CIFAR10_RECYCLE_MB`` more than
    after its first trial. ``train`` replaces the trainer (tests)."""
    context = context or WorkerContext()
    with search_guard(), progress.off(quiet), open(os.devnull, "w") as devnull:
        out = devnull if quiet else out
        study, s = load(name, url, context.index, context.restarts)
        engine_for(s.engine)(
            study, s, source, context=context, out=out or sys.stdout, recycle=recycle, train=train
        )


def run_optuna(
    study: optuna.Study,
    s: Settings,
    source: Source,
    *,
    context: WorkerContext,
    out: TextIO,
    recycle: bool = False,
    train: Trainer | None = None,
) -> None:
    """Optuna's engine: while the study's scheduler gives a job, run it (one
    ``study.optimize`` call per trial); wait on "nothing now"; end on "stop"."""
    fail_dead_local_trials(study)  # left RUNNING by a worker killed before this one started
    split = split_for(s.base(), source)
    scheduler = make_scheduler(study, s)
    objective = Objective(s, split, train=train, context=context, scheduler=scheduler)
    mine: list[optuna.trial.FrozenTrial] = []
    bar = None
    if context.count == 1 and progress.wanted():  # one bar per terminal: not for --jobs K
        bar = progress.study_bar(study.study_name, s.trials, s.trials - remaining(study, s))
        objective.bars_row = 1

    def show(st: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        mine.append(t)
        progress.say(context.prefix + progress_line(st, t), file=out)
        if bar is not None:
            now = Settings.of(st)  # another process may have raised the target
            bar.total = now.trials
            bar.n = now.trials - max(remaining(st, now), 0)
            bar.set_postfix_str(best_text(st))

    with contextlib.closing(bar) if bar is not None else contextlib.nullcontext():
        failures = 0
        first_rss: float | None = None
        limit = env.recycle_mb()
        while True:
            if STOP.is_set():
                raise KeyboardInterrupt("stopped by SIGINT")
            step = scheduler.next_job()
            if step == Next.STOP:
                break
            if step == Next.WAIT:
                time.sleep(min(env.heartbeat_s(), 5))  # a running trial elsewhere may be lost
                continue
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[show])
            last = mine[-1] if mine else None
            failed = last is not None and last.user_attrs.get(Attr.END) == End.ERROR
            failures = failures + 1 if failed else 0
            if failures >= MAX_FAILURES_IN_A_ROW:
                detail = last.user_attrs.get(Attr.END_DETAIL, "").splitlines()[0]
                raise UserError(
                    f"worker {context.index} stopped: {failures} trials in a row failed, the last "
                    f"with {detail}. Finished trials are kept; see 'cifar10-search status --study "
                    f"{study.study_name}' and fix the cause before starting again."
                )
            s = Settings.of(study)  # another process may have raised the target
            rss = rss_mb()
            first_rss = rss if first_rss is None else first_rss
            if recycle and rss - first_rss > limit and remaining(study, s) > 0:
                progress.say(
                    f"{context.prefix}worker holds {rss:.0f} MB, {rss - first_rss:.0f} MB more "
                    "than after its first trial: restarting it to free TensorFlow's graphs",
                    file=out,
                )
                restart(context)


def context_args(context: WorkerContext) -> list[str]:
    """The hidden command-line options that carry a worker's context to a new process."""
    return [
        "--worker-index", str(context.index), "--workers", str(context.count),
        "--restarts", str(context.restarts), "--started-at", repr(context.started_at),
    ]  # fmt: skip


def restart(context: WorkerContext) -> None:
    """Replace this process with a fresh run of the same command (same pid and arguments),
    its context carried on the command line with one more restart."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    args = [*sys.orig_argv[1:], *context_args(replace(context, restarts=context.restarts + 1))]
    os.execv(sys.executable, [sys.executable, *args])


def spawn_workers(
    name: str, storage: str | None, source: Source, jobs: int, started_at: float, *, quiet=False
) -> None:
    """Run ``jobs`` worker processes on the study and wait for them; Ctrl-C stops them all."""
    cmd = [sys.executable, "-m", "search.cli", "worker", "--study", name]
    cmd += ["--quiet"] if quiet else []
    if storage:
        cmd += ["--storage", storage]
    if source.path is not None:
        cmd += ["--data", str(source.path)]
    procs = [
        subprocess.Popen([*cmd, *context_args(WorkerContext(i, jobs, 0, started_at))])
        for i in range(jobs)
    ]
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        import signal

        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise
    if any(codes):
        raise UserError(f"worker exit codes {codes}; see their messages above.")
