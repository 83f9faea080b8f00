"""Schedulers: what decides which training job a worker runs next, and whether it goes on.

A *job* trains one config from epoch ``start`` to ``stop``, from scratch or resuming a paused
trial's training state; each job is one Optuna trial of the study. The seam:

- the worker loop (:func:`search.worker.run_optuna`): ``while True: next_job()``; on
  :attr:`Next.RUN` it asks the study for a trial (``study.optimize(..., n_trials=1)``: Optuna's
  heartbeats, states and callbacks), on :attr:`Next.WAIT` it sleeps, on :attr:`Next.STOP` it
  ends;
- the trial runner (:class:`search.objective.Objective`) reads the trial's :class:`Job`
  (``job(trial)``), has the scheduler ``restore`` the state it resumes, trains from ``start``
  to ``stop`` reporting every epoch (``on_epoch``: True stops it) and tells ``on_end`` how it
  ended; it never asks which scheduler it serves.

``next_job`` returns no trial itself because with several workers on one study a queued
trial goes to whichever worker asks first: the job is read off the trial it is handed.

The trial contract (user attributes, keys in :class:`search.record.Attr`), as KerasTuner's
Hyperband oracle documents its ``tuner/*`` keys:

- ``resume_of``: the paused trial whose training state this one continues (absent: a new
  config, sampled by the study's sampler; what the study's target counts);
- ``start_epoch``: the epochs its config had trained before this trial;
- ``rung``: the epoch it trains to (it pauses there, unless that is the study's last);
- ``checkpoint``: the artifact holding a paused trial's training state;
- ``cooldown_epochs``: a wsd job that paused was scored on a cooldown branch of this many
  epochs (a fraction); its intermediate value at ``rung`` is the branch's score;
- ``end`` (:class:`search.record.End`): how it ended; ``paused`` with a checkpoint to resume.

Trials of :class:`PrunerScheduler` carry none of the first four: each is a new config from
epoch 0 to the study's last.

To add a scheduler: one file here with one class that has :class:`Scheduler`'s methods, its
name in :func:`make_scheduler` and in ``settings.PRUNERS``. A test drives it without
training: call ``next_job`` / ``job`` / ``on_epoch`` / ``on_end`` on an in-memory study, or
run a worker with a fake trainer (``tests/test_promote.py``: ``fake_train``).
"""

from __future__ import annotations

import optuna

from search.schedulers.base import Job, Next, Scheduler
from search.schedulers.promote import PromoteScheduler
from search.schedulers.pruners import PrunerScheduler
from search.settings import Settings

__all__ = ["Job", "Next", "PromoteScheduler", "PrunerScheduler", "Scheduler", "make_scheduler"]


def make_scheduler(study: optuna.Study, settings: Settings, store=None) -> Scheduler:
    """The study's scheduler, by its ``pruner`` setting (``store``: promote's checkpoints)."""
    if settings.pruner == "promote":
        return PromoteScheduler(study, settings, store)
    return PrunerScheduler(settings, study)
