"""Where a study lives: names and folders, storage URLs and passwords, opening a storage, and
the trials whose worker died (heartbeats for databases, process checks for journal files),
each retried once.

To support another storage: teach :func:`open_storage` to open it and :func:`is_database`
whether it has heartbeats.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import env
from search.errors import UserError
from search.record import LOST_PREFIX, Attr, End

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UserError(
            f"study name {name!r} is not allowed: use letters, digits, '-', '_' and '.', "
            f"starting with a letter or digit (it names the folder results/NAME/)."
        )
    return name


def study_dir(name: str) -> Path:
    return env.results_root() / check_name(name)


def redact(url: str) -> str:
    """A URL fit to print: without its password."""
    if not is_database(url):
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a database URL: nothing to hide
        return url


def storage_url(name: str, url: str | None) -> str:
    """The study's storage URL: the one given, else the one recorded for the study, else the
    local journal file ``results/NAME/study.log``."""
    recorded = study_dir(name) / "storage.txt"
    if url:
        return url
    if recorded.exists():
        return recorded.read_text().strip()
    return str(study_dir(name) / "study.log")


def record_url(name: str, url: str) -> None:
    """Remember a database URL (without password) so later commands need only the name."""
    if is_database(url):
        d = study_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        (d / "storage.txt").write_text(redact(url) + "\n")


def _with_password(url: str) -> str:
    """Add the password from ``CIFAR10_STORAGE_PASSWORD`` or the file named by
    ``CIFAR10_STORAGE_PASSWORD_FILE``; a password in the URL itself is refused."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.password:
        raise UserError(
            f"the storage URL {redact(url)} carries a password; command lines are visible to "
            f"every user of the machine. Drop it from the URL and set CIFAR10_STORAGE_PASSWORD, "
            f"or CIFAR10_STORAGE_PASSWORD_FILE=PATH (or PGPASSWORD / ~/.pgpass for PostgreSQL)."
        )
    pw = env.text("CIFAR10_STORAGE_PASSWORD")
    pw_file = env.text("CIFAR10_STORAGE_PASSWORD_FILE")
    if pw is None and pw_file:
        try:
            pw = Path(pw_file).read_text().strip()
        except OSError as e:
            raise UserError(f"cannot read the password file {pw_file}: {e}.") from None
    return u.set(password=pw).render_as_string(hide_password=False) if pw else url


def is_database(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def _driver(url: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg 3 when only it is installed."""
    if url.startswith("postgresql://"):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
            return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def open_storage(url: str, *, create: bool = True) -> optuna.storages.BaseStorage:
    """A journal file (the local default: safe for several processes on one machine) or any
    database URL SQLAlchemy knows, with heartbeats so a dead worker's trial is failed and
    retried once. Without ``create``, a journal file that does not exist is not made: the
    study is not there (:class:`KeyError`)."""
    if is_database(url):
        try:
            return optuna.storages.RDBStorage(
                _driver(_with_password(url)),
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=env.heartbeat_s(),
                grace_period=env.grace_s(),
                heartbeat_stale_trial_callback=_RetryLost(),
            )
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - connection errors come in many types
            raise UserError(f"cannot open the storage {redact(url)}: {first_line(e)}") from None
    path = Path(url.removeprefix("file://"))
    if not create and not path.exists():
        raise KeyError(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(
        str(path), lock_obj=optuna.storages.journal.JournalFileOpenLock(str(path))
    )
    try:
        return optuna.storages.journal.JournalStorage(backend)
    except (json.JSONDecodeError, ValueError) as e:
        raise UserError(damaged_journal(path) or f"cannot read {path}: {first_line(e)}") from None


def damaged_journal(path: Path) -> str | None:
    """What is wrong with a journal file whose replay failed: the first damaged line, what the
    lines before it hold and what to do. None if every line but a cut-off last one reads."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    complete = lines[:-1]  # the part after the last newline is a write in progress, or empty
    for number, line in enumerate(complete, start=1):
        try:
            json.loads(line)
        except ValueError:
            return (
                f"the study's journal file {path} is damaged at line {number} of "
                f"{len(complete)} (not a JSON record: a bad disk or a hand edit?). The "
                f"{number - 1} lines before it hold the study up to that point: keep a copy of "
                f"the file, then continue from there with 'head -n {number - 1} {path} > "
                f"fixed.log' and moving fixed.log to {path.name}, or move the file away to "
                f"start the study again."
            )
    return None


# --- lost trials: a worker died ------------------------------------------------------------


def _retry_note(t: FrozenTrial) -> str:
    if Attr.RESUME_OF in t.user_attrs:
        parent = t.user_attrs[Attr.RESUME_OF]
        return f"not retried: trial {parent}, which it resumed, is promotable again"
    if Attr.RETRY_OF in t.user_attrs:
        return f"not retried again: it was the retry of trial {t.user_attrs[Attr.RETRY_OF]}"
    return "its parameters are tried once more"


def retry_once(study: optuna.Study, t: FrozenTrial) -> str:
    """Queue a lost trial's parameters once more, unless it was itself such a retry (a config
    that kills its worker every time must not loop the study). Returns what was done."""
    if Attr.RETRY_OF not in t.user_attrs and Attr.RESUME_OF not in t.user_attrs:
        study.enqueue_trial(t.params, user_attrs={Attr.RETRY_OF: t.number}, skip_if_exists=False)
    return _retry_note(t)


class _RetryLost:
    """Heartbeat callback: retry the trial once, and record why it failed. The trial is
    already finished when this runs, so the reason is kept on the study (``lost:NUMBER``)."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        done = retry_once(study, trial)
        study.set_user_attr(
            f"{LOST_PREFIX}{trial.number}",
            f"no heartbeat for {env.grace_s()} s: its worker died (killed, out of memory or "
            f"machine lost); {done}",
        )


def has_heartbeats(study: optuna.Study) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(study._storage)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail running trials whose worker process on this machine no longer exists, and retry
    each once: what heartbeats do for database storages, for the journal file (which has
    none). Returns the failed trials' numbers."""
    if has_heartbeats(study):
        return []  # heartbeats see every lost worker, on this machine or another
    host = socket.gethostname()
    lost = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get(Attr.PID)
        if t.user_attrs.get(Attr.HOST) != host or pid is None or _alive(int(pid)):
            continue
        storage = study._storage
        try:  # the reason first: a finished trial takes no more attributes
            storage.set_trial_user_attr(t._trial_id, Attr.END, End.LOST.value)
            storage.set_trial_user_attr(
                t._trial_id,
                Attr.END_DETAIL,
                f"its worker process {pid} on {host} died; {_retry_note(t)}",
            )
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        retry_once(study, t)
        lost.append(t.number)
    return lost


def others_may_fail(study: optuna.Study) -> bool:
    """On a storage with heartbeats: whether trials still run elsewhere, any of which could be
    lost and need retrying. Stale ones are failed (and retried) here and now."""
    if not has_heartbeats(study):
        fail_dead_local_trials(study)
        return False
    optuna.storages.fail_stale_trials(study)
    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
