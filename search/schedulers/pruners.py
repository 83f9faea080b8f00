"""Optuna's samplers with its stopping pruners (``--pruner hyperband | asha | median | none``):
every job trains a new config from epoch 0 to the study's last, and the study's pruner (set
when the study is loaded: :func:`search.settings.make_pruner`) may stop it after any epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from search.schedulers.base import Job, Next, new_config_or_wait, report
from search.settings import Settings


class PrunerScheduler:
    """New configs until the target; Optuna's pruner judges each epoch. Never after the
    study's last epoch: that training is paid for, and a pruner with a rung there (Hyperband
    from 1 epoch by factor 3 has rungs at 3 and 9) would record a trial that trained every
    epoch as pruned, its result lost to the best-trial choice."""

    def __init__(self, settings: Settings, study: optuna.Study | None = None):
        self.settings, self.study = settings, study  # no study: the runner's steps only (kt)

    def next_job(self) -> Next:
        assert self.study is not None, "next_job needs the study"
        return new_config_or_wait(self.study, Settings.of(self.study), running_may_queue=False)

    def job(self, trial: optuna.Trial) -> Job:
        return Job(0, self.settings.epochs)

    def restore(self, job: Job, folder: Path) -> None:
        raise AssertionError("a pruner's jobs never resume")

    def on_epoch(self, trial: optuna.Trial, job: Job, epoch: int, value: float) -> bool:
        report(trial, epoch, value)
        return epoch < self.settings.epochs and trial.should_prune()

    def on_end(self, trial: optuna.Trial, job: Job, result: Any, folder: Path | None) -> None:
        pass
