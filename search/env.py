"""The environment variables a user sets, read in this one place.

Every variable the package reads is in :data:`VARIABLES` (the README lists the same); nothing
else passes values through ``os.environ``. Context such as a worker's index travels as
arguments. The one exception, set by the package and never by a user: the test-split guard
(``search.data.GUARD_ENV``), an environment variable so that every process a search starts
(local workers, KerasTuner's, a restarting worker, a library's own subprocesses) inherits the
refusal without each call site having to pass it on. To add a variable: a row in
:data:`VARIABLES`, a reader here, a line in the README.
"""

from __future__ import annotations

import os
from pathlib import Path

from search.errors import UserError

VARIABLES = {
    "CIFAR10_DATA": "the images, as --data PATH does (zip, folder, .npz, cifar-10-batches-py)",
    "CIFAR10_RESULTS": "the results folder (default ./results)",
    "CIFAR10_CACHE": "where decoded images are cached (default results/cache)",
    "CIFAR10_STORAGE_PASSWORD": "a database storage's password",
    "CIFAR10_STORAGE_PASSWORD_FILE": "a file holding a database storage's password",
    "CIFAR10_HEARTBEAT_S": "database storages: seconds between a running trial's heartbeats (20)",
    "CIFAR10_GRACE_S": "database storages: seconds without one before a trial is lost (90)",
    "CIFAR10_RECYCLE_MB": "a worker restarts itself once it has grown this much (200)",
    "CIFAR10_VERBOSE": "1: keep TensorFlow's C++ start-up lines (the command line hides them)",
    "CIFAR10_PROGRESS": "1 / 0: progress bars on / off (default: on when stderr is a terminal)",
}


def text(name: str) -> str | None:
    """A variable's value, or None when unset or empty."""
    assert name in VARIABLES, name
    return os.environ.get(name) or None


def positive(name: str, default: float, kind: type = int) -> float:
    """A positive number, or a clear error naming the variable."""
    raw = text(name)
    if raw is None:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        value = 0
    if value <= 0:
        what = "whole number" if kind is int else "number"
        raise UserError(
            f"{name}={raw!r} is not a positive {what}; unset it or give one like {default}."
        )
    return value


def check() -> None:
    """Read every numeric variable once, so a bad value is named before any work starts."""
    heartbeat_s(), grace_s(), recycle_mb()


def results_root() -> Path:
    """Where outputs go: ``results/`` under the working directory, or ``CIFAR10_RESULTS``."""
    return Path(text("CIFAR10_RESULTS") or "results")


def cache_dir() -> Path:
    return Path(text("CIFAR10_CACHE") or results_root() / "cache")


def heartbeat_s() -> int:
    """Database storages: a worker's running trial shows it is alive this often."""
    return int(positive("CIFAR10_HEARTBEAT_S", 20))


def grace_s() -> int:
    """Database storages: a trial silent this long is failed and tried once more."""
    return int(positive("CIFAR10_GRACE_S", 90))


def recycle_mb() -> float:
    """TensorFlow keeps every traced graph of a process alive, clear_session or not (about
    20 MB a trial here: tensorflow/tensorflow#61791), so a command-line worker that has grown
    this much since its first trial replaces itself with a fresh process between trials."""
    return float(positive("CIFAR10_RECYCLE_MB", 200, float))
