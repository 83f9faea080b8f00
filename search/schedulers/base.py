"""The scheduler interface (see the package docstring for the trial contract)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from search.settings import Settings, remaining
from search.storage import others_may_fail


class Next(StrEnum):
    """What :meth:`Scheduler.next_job` tells a worker."""

    RUN = "run"  # ask the study for a trial: it is a job (queued, or a new config)
    WAIT = "wait"  # nothing now: a trial running elsewhere may still give work, or be lost
    STOP = "stop"  # the study's target is reached


@dataclass(frozen=True)
class Job:
    """Train one config from epoch ``start`` to ``stop`` (of the study's epochs), resuming
    the training state of trial ``resume_of`` when it is set (``start`` epochs trained)."""

    start: int
    stop: int
    resume_of: int | None = None

    @property
    def resumes(self) -> bool:
        return self.resume_of is not None


class Scheduler(Protocol):
    """What decides which job runs next and whether a running one goes on. The trial runner
    (:class:`search.objective.Objective`) calls ``job``, ``restore``, ``on_epoch`` and
    ``on_end``; the worker loop (:func:`search.worker.run_optuna`) calls ``next_job``."""

    def next_job(self) -> Next:
        """Decide what a free worker does; may queue a trial (a promotion) to be asked."""

    def job(self, trial: optuna.Trial) -> Job:
        """The job a trial the study handed out stands for (its contract attributes)."""

    def restore(self, job: Job, folder: Path) -> None:
        """Unpack the training state ``job`` resumes from into ``folder``."""

    def on_epoch(self, trial: optuna.Trial, job: Job, epoch: int, value: float) -> bool:
        """Hear the validation value after ``epoch``; True to stop the job there."""

    def on_end(self, trial: optuna.Trial, job: Job, result: Any, folder: Path | None) -> None:
        """Record how the training ended (before the trial is told): ``folder`` holds the
        training state of a job that paused."""


def report(trial: optuna.Trial, epoch: int, value: float) -> None:
    """An epoch's value as the trial's intermediate value (NaN is not reported)."""
    if math.isfinite(value):
        trial.report(value, epoch)


def new_config_or_wait(study: optuna.Study, s: Settings, *, running_may_queue: bool) -> Next:
    """RUN while new configs are still to start; else WAIT while a trial elsewhere may yet be
    lost (its slot opens again) or, with ``running_may_queue``, queue work when it ends;
    else STOP."""
    if remaining(study, s) > 0:
        return Next.RUN
    others = others_may_fail(study)  # fails lost trials: their slots open again
    if running_may_queue and not others:
        others = bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    if remaining(study, s) > 0:
        return Next.RUN
    return Next.WAIT if others else Next.STOP
