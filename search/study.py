"""Search studies: Optuna trials over a space, with budgets, pruning, resume and workers.

A study keeps its settings (the space file's text, epochs, split sizes, pruner, sampler, seed,
limits and the target number of trials) in the storage itself, so ``start`` again, ``worker``
on another machine, ``status`` and ``plots`` all agree without repeating options.

One trial: sample the space, apply the point to the frozen base config, build the model, check
the budgets (an over-budget config ends in about a second and is reported to the sampler as
infeasible), train on the train split reporting validation accuracy after every epoch, prune.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import re
import resource
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

import optuna
from optuna.trial import TrialState

from search import STOP, budget
from search.config import Config
from search.data import Source, Split, results_root, search_guard, split_for
from search.errors import UserError
from search.space import Space, parse_space

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Trials that count towards the target. Queued (WAITING) ones do not: the next worker to ask
# for a trial takes them, within the target.
LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
MAX_FAILURES_IN_A_ROW = 5  # a worker whose trials keep raising stops instead of looping
RESUMABLE = ("trials", "deadline", "epoch_budget")  # settings a resumed study may change


def _env_number(name: str, default: int, kind: type = int) -> float:
    """A positive number from the environment, or a clear error naming the variable."""
    raw = os.environ.get(name)
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


# Database storages: a worker's running trial shows it is alive every HEARTBEAT_S seconds; one
# silent for GRACE_S is failed and its parameters tried once more. Environment overrides exist
# for tests and for clusters with slow shared disks.
HEARTBEAT_S = _env_number("CIFAR10_HEARTBEAT_S", 20)
GRACE_S = _env_number("CIFAR10_GRACE_S", 90)
# TensorFlow keeps every traced train/test step graph of a process alive, clear_session or not
# (about 20 MB a trial here: tensorflow/tensorflow#61791), so a command-line worker whose
# resident memory has grown this much since its first trial replaces itself with a fresh
# process (os.execv, same pid and arguments) between trials. The study is resumed, not lost.
RECYCLE_MB = _env_number("CIFAR10_RECYCLE_MB", 200, float)

optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress lines say what failed


# --- names, folders, storage ------------------------------------------------------------


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UserError(
            f"study name {name!r} is not allowed: use letters, digits, '-', '_' and '.', "
            f"starting with a letter or digit (it names the folder results/NAME/)."
        )
    return name


def study_dir(name: str) -> Path:
    return results_root() / check_name(name)


def _redact(url: str) -> str:
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


def _with_password(url: str) -> str:
    """Add the password from ``CIFAR10_STORAGE_PASSWORD`` or the file named by
    ``CIFAR10_STORAGE_PASSWORD_FILE``; a password in the URL itself is refused."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.password:
        raise UserError(
            f"the storage URL {_redact(url)} carries a password; command lines are visible to "
            f"every user of the machine. Drop it from the URL and set CIFAR10_STORAGE_PASSWORD, "
            f"or CIFAR10_STORAGE_PASSWORD_FILE=PATH (or PGPASSWORD / ~/.pgpass for PostgreSQL)."
        )
    pw = os.environ.get("CIFAR10_STORAGE_PASSWORD")
    pw_file = os.environ.get("CIFAR10_STORAGE_PASSWORD_FILE")
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


class _RetryLost:
    """Heartbeat callback: record why the trial failed, then queue its parameters once more.

    The trial is already finished when this runs, so the reason is kept on the study
    (``lost:NUMBER``) and read back by :func:`end_of`."""

    def __init__(self) -> None:
        self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        study.set_user_attr(
            f"lost:{trial.number}",
            f"no heartbeat for {GRACE_S} s: its worker died (killed, out of memory or machine "
            f"lost); its parameters are tried once more",
        )
        self.retry(study, trial)


def lost_trials(study: optuna.Study) -> dict[int, str]:
    return {int(k[5:]): v for k, v in study.user_attrs.items() if k.startswith("lost:")}


def end_of(t: optuna.trial.FrozenTrial, lost: dict[int, str] | None = None) -> tuple[str, str]:
    """How a trial ended and the detail: complete, pruned, over_budget, diverged, error,
    interrupted, lost, surplus, or its bare state while it runs."""
    if "end" in t.user_attrs and t.state != TrialState.RUNNING:
        return t.user_attrs["end"], t.user_attrs.get("end_detail", "")
    if lost and t.number in lost:
        return "lost", lost[t.number]
    return t.state.name.lower(), ""


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file (the local default: safe for several processes on one machine) or any
    database URL SQLAlchemy knows, with heartbeats so a dead worker's trial is failed and
    retried once."""
    if is_database(url):
        try:
            return optuna.storages.RDBStorage(
                _driver(_with_password(url)),
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=_RetryLost(),
            )
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - connection errors come in many types
            raise UserError(f"cannot open the storage {_redact(url)}: {_first_line(e)}") from None
    path = Path(url.removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(
        str(path), lock_obj=optuna.storages.journal.JournalFileOpenLock(str(path))
    )
    return optuna.storages.journal.JournalStorage(backend)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# --- settings stored with the study ---------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    space_path: str
    space_text: str
    trials: int
    epochs: int
    train_size: int | None
    val_size: int
    pruner: str = "hyperband"
    sampler: str = "tpe"
    seed: int = 0
    max_params: int = budget.MAX_PARAMS
    max_latency_ms: float = budget.MAX_LATENCY_MS
    deadline: float | None = None  # epoch seconds after which no trial starts
    epoch_budget: int | None = None  # no trial starts once this many epochs were trained
    engine: str = "optuna"  # optuna | kerastuner
    tuner: str = "hyperband"  # the KerasTuner engine's tuner: hyperband | bayesian | random
    startup_trials: int = 10  # TPE's random start-up trials (Optuna's default; older studies)

    def space(self) -> Space:
        return parse_space(self.space_text, Path(self.space_path))

    def base(self) -> Config:
        """The space's base with the study's epochs and split: every trial starts here."""
        return self.space().base.replace(
            epochs=self.epochs, train_size=self.train_size, val_size=self.val_size
        )

    def limits(self) -> budget.Limits:
        return budget.Limits(self.max_params, self.max_latency_ms)

    @classmethod
    def of(cls, study: optuna.Study) -> Settings:
        raw = study.user_attrs.get("settings")
        if raw is None:
            raise UserError(
                f"study {study.study_name!r} was not made by cifar10-search (no settings stored)."
            )
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(raw).items() if k in known})

    def store(self, study: optuna.Study) -> None:
        study.set_user_attr("settings", json.dumps(asdict(self)))


def make_sampler(s: Settings, worker: int = 0) -> optuna.samplers.BaseSampler:
    seed = s.seed + worker  # workers of one study must not draw the same startup points
    if s.sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, n_startup_trials=s.startup_trials
        )
    if s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise UserError(f"sampler {s.sampler!r} is unknown; choose tpe, random or cmaes.")


def make_pruner(s: Settings) -> optuna.pruners.BasePruner:
    if s.engine == "kerastuner":  # KerasTuner's own tuner decides; the mirror never prunes
        return optuna.pruners.NopPruner()
    if s.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(s.epochs, 1), reduction_factor=3
        )
    if s.pruner == "asha":
        # Successive halving with KerasTuner's first rung (2 epochs) and no lone promotions: a
        # trial is stopped at a rung until 2 others have reached it, so the first trials of a
        # study are screened instead of all being trained in full. A study of under 10 trials
        # cannot spare its first two (it could end with no complete trial): there a trial
        # alone at a rung goes on, as in Hyperband.
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=2, reduction_factor=3, bootstrap_count=2 if s.trials >= 10 else 0
        )
    if s.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if s.pruner == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"pruner {s.pruner!r} is unknown; choose hyperband, asha, median or none.")


def load(name: str, url: str | None = None, worker: int = 0) -> tuple[optuna.Study, Settings]:
    """Open an existing study with its stored sampler and pruner settings."""
    url = storage_url(name, url)
    storage = open_storage(url)
    try:
        probe = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise UserError(
            f"no study {name!r} in {_redact(url)}; start one with "
            f"'cifar10-search start --study {name} ...'."
        ) from None
    s = Settings.of(probe)
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=make_sampler(s, worker), pruner=make_pruner(s)
    )
    return study, s


def create_or_resume(
    name: str,
    url: str | None,
    settings: Settings,
    *,
    given: set[str],
    enqueue_seed: bool = True,
) -> tuple[optuna.Study, Settings]:
    """Create the study, or resume it: stored settings win, except the trial target and the
    timeout; an option given now that contradicts the stored ones is an error."""
    url = storage_url(name, url)
    storage = open_storage(url)
    names = {
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    }
    if name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        old = Settings.of(study)
        clash = [
            "the space file (its text differs from the stored one)"
            if k == "space_text"
            else f"{k} (stored {getattr(old, k)!r}, given {getattr(settings, k)!r})"
            for k in sorted(given)
            if k not in RESUMABLE and getattr(old, k) != getattr(settings, k)
        ]
        if clash:
            raise UserError(
                f"study {name!r} exists with other settings: {', '.join(clash)}. A study keeps "
                f"its settings so its trials compare; start a new study name instead."
            )
        keep = {k: getattr(settings, k) for k in RESUMABLE if k in given}
        settings = Settings(**{**asdict(old), **keep})
    else:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        study.set_user_attr("created", time.time())
        if enqueue_seed:
            point = settings.space().base_point()
            study.enqueue_trial(point, user_attrs={"enqueued": "base config of the space"})
    settings.store(study)
    if is_database(url):
        d = study_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        (d / "storage.txt").write_text(_redact(url) + "\n")
    return study, settings


# --- one trial ------------------------------------------------------------------------------


class _Surplus(Exception):
    """Another worker's trial already fills the study's target."""


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_live(study: optuna.Study, before: int | None = None) -> int:
    """Trials that count towards the target: finished (complete or pruned) or running; with
    ``before``, only those numbered below it."""
    trials = study.get_trials(deepcopy=False, states=LIVE)
    return sum(1 for t in trials if before is None or t.number < before)


class Objective:
    """Train one sampled config and return its final validation accuracy.

    The steps (:meth:`prepare`, :meth:`reporter`, :meth:`conclude`, inside :meth:`recording`)
    are public so the KerasTuner engine records its trials exactly the same way."""

    def __init__(self, settings: Settings, split: Split):
        self.settings, self.split = settings, split
        self.space, self.base, self.limits = settings.space(), settings.base(), settings.limits()

    def __call__(self, trial: optuna.Trial) -> float:
        t0 = time.perf_counter()
        if count_live(trial.study, before=trial.number) >= self.settings.trials:
            self._end(trial, "surplus", "the study's target was reached by other workers", t0)
            raise _Surplus("target reached")
        with self.recording(trial, t0):
            from search.training import train

            config, model = self.prepare(trial, t0)
            r = train(model, config, self.split, on_epoch=self.reporter(trial), verbose=False)
            del model
            return self.conclude(trial, r, t0)

    @contextlib.contextmanager
    def recording(self, trial: optuna.Trial, t0: float) -> Iterator[None]:
        """Record why a trial ended when it ends with an exception."""
        try:
            yield
        except (optuna.TrialPruned, _Surplus):
            raise
        except KeyboardInterrupt:
            self._end(trial, "interrupted", "stopped by Ctrl-C (SIGINT)", t0)
            raise
        except Exception as e:
            tb = traceback.format_exc(limit=8)
            self._end(trial, "error", f"{type(e).__name__}: {_first_line(e)}\n{tb[-1500:]}", t0)
            raise

    def prepare(self, trial: optuna.Trial, t0: float) -> tuple[Config, Any]:
        """Sample the config, build its model and check the budgets (``TrialPruned`` when
        over budget: the sampler sees the trial as infeasible through its constraints)."""
        import keras

        from search.models import build_model

        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        params = self.space.suggest(trial)
        config = self.space.apply(params, self.base)
        trial.set_user_attr("config", config.to_dict())
        keras.backend.clear_session(free_memory=True)
        gc.collect()
        model = build_model(config, whiten_images=self.split.x_train)
        m = budget.measure(model, warmup=10, runs=50)
        trial.set_user_attr("n_params", m.params)
        trial.set_user_attr("latency_p50_ms", round(m.latency_p50_ms, 3))
        trial.set_user_attr("latency_p95_ms", round(m.latency_p95_ms, 3))
        trial.set_constraint("params", m.params - (self.limits.max_params - 1))
        trial.set_constraint("latency_ms", m.latency_p50_ms - self.limits.max_latency_ms)
        over = budget.violations(m, self.limits)
        if over:
            trial.set_user_attr("epochs", 0)
            self._end(trial, "over_budget", "; ".join(over), t0)
            raise optuna.TrialPruned("over budget: " + "; ".join(over))
        return config, model

    def reporter(self, trial: optuna.Trial):
        """The per-epoch hook: report validation accuracy, say whether to prune. Never after
        the study's last epoch: that training is paid for, and a pruner with a rung there
        (Hyperband from 1 epoch by factor 3 has rungs at 3 and 9) would record a trial that
        trained every epoch as pruned, its result lost to the best-trial choice."""
        last = self.settings.epochs

        def report(epoch: int, logs: dict[str, float]) -> bool:
            value = float(logs.get("val_accuracy", float("nan")))
            if math.isfinite(value):
                trial.report(value, epoch)
            return epoch < last and trial.should_prune()

        return report

    def conclude(self, trial: optuna.Trial, r: Any, t0: float) -> float:
        """Record a finished training run; ``TrialPruned`` unless it ran to the study's epochs."""
        trial.set_user_attr("epochs", len(r.history.get("loss", [])))  # trained in this trial
        trial.set_user_attr("train_seconds", round(r.seconds, 2))
        if r.status == "pruned":
            self._end(trial, "pruned", f"pruned at epoch {r.epochs}", t0)
            raise optuna.TrialPruned(f"pruned at epoch {r.epochs}")
        if r.status == "diverged":
            self._end(trial, "diverged", f"loss not finite at epoch {r.epochs}", t0)
            raise optuna.TrialPruned(f"diverged at epoch {r.epochs}")
        if r.status == "complete" and r.epochs < self.settings.epochs:  # a Hyperband round
            self._end(trial, "pruned", f"pruned at epoch {r.epochs} by the tuner's schedule", t0)
            raise optuna.TrialPruned(f"stopped at epoch {r.epochs}")
        self._end(trial, "complete", f"{r.status} after {r.epochs} epochs", t0)
        return float(r.val_accuracy)

    def _end(self, trial: optuna.Trial, end: str, detail: str, t0: float) -> None:
        trial.set_user_attr("end", end)
        trial.set_user_attr("end_detail", detail)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        trial.set_user_attr("rss_mb", round(_rss_mb(), 1))
        trial.set_user_attr("worker", os.environ.get("CIFAR10_WORKER", "0"))
        trial.set_user_attr("process_restarts", int(os.environ.get("CIFAR10_RESTARTS", 0)))


# --- workers ------------------------------------------------------------------------------


def progress_line(study: optuna.Study, t: optuna.trial.FrozenTrial) -> str:
    ua = t.user_attrs
    value = f"{t.value:.4f}" if t.value is not None else "  -   "
    params = f"{ua['n_params']:>9,}" if "n_params" in ua else " " * 9
    end, detail = end_of(t)
    end = detail if end in ("pruned", "complete", "over_budget") else end
    try:
        best = f"best {study.best_value:.4f} (#{study.best_trial.number})"
    except ValueError:
        best = "best -"
    secs = ua.get("seconds", (t.duration.total_seconds() if t.duration else 0.0))
    return (
        f"trial {t.number:>3}  {params} params  val {value}  {t.state.name:<8} "
        f"{end.splitlines()[0][:60]:<36} {secs:6.0f}s  {best}"
    )


def epochs_trained(study: optuna.Study) -> int:
    return sum(int(t.user_attrs.get("epochs", 0)) for t in study.get_trials(deepcopy=False))


def remaining(study: optuna.Study, s: Settings) -> int:
    """Trials still to start: none past the deadline or the epoch budget."""
    if s.deadline is not None and time.time() >= s.deadline:
        return 0
    if s.epoch_budget is not None and epochs_trained(study) >= s.epoch_budget:
        return 0
    return s.trials - count_live(study)


def run_worker(
    name: str,
    url: str | None,
    source: Source,
    *,
    worker: int = 0,
    out: TextIO | None = None,
    recycle: bool = False,
) -> None:
    """Run trials of the study until its stored target (trials, deadline) is reached.

    With ``recycle`` (command-line workers only: it replaces the running program), the
    process restarts itself between trials once it holds :data:`RECYCLE_MB` more than after
    its first trial."""
    with search_guard():
        study, s = load(name, url, worker)
        if s.engine == "kerastuner":
            from search.kt import run_kerastuner

            return run_kerastuner(study, s, source, out=out or sys.stdout)
        fail_dead_local_trials(study)  # left RUNNING by a worker killed before this one started
        split = split_for(s.base(), source)
        objective = Objective(s, split)
        prefix = f"[w{worker}] " if os.environ.get("CIFAR10_WORKERS", "1") != "1" else ""

        mine: list[optuna.trial.FrozenTrial] = []

        def show(st: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
            mine.append(t)
            print(prefix + progress_line(st, t), file=out or sys.stdout, flush=True)

        failures = 0
        first_rss: float | None = None
        while True:
            if STOP.is_set():
                raise KeyboardInterrupt("stopped by SIGINT")
            s = Settings.of(study)  # another process may have raised the target
            if remaining(study, s) <= 0:
                others = _others_may_fail(study)  # fails lost trials: their slots open again
                if remaining(study, s) <= 0:
                    if not others:
                        break
                    time.sleep(min(HEARTBEAT_S, 5))  # a running trial elsewhere may be lost
                    continue
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[show])
            last = mine[-1] if mine else None
            failed = last is not None and last.user_attrs.get("end") == "error"
            failures = failures + 1 if failed else 0
            if failures >= MAX_FAILURES_IN_A_ROW:
                detail = last.user_attrs.get("end_detail", "").splitlines()[0]
                raise UserError(
                    f"worker {worker} stopped: {failures} trials in a row failed, the last with "
                    f"{detail}. Finished trials are kept; see 'cifar10-search status --study "
                    f"{name}' and fix the cause before starting again."
                )
            rss = _rss_mb()
            first_rss = rss if first_rss is None else first_rss
            if recycle and rss - first_rss > RECYCLE_MB and remaining(study, s) > 0:
                _restart(
                    f"{prefix}worker holds {rss:.0f} MB, {rss - first_rss:.0f} MB more than "
                    "after its first trial: restarting it to free TensorFlow's graphs",
                    out,
                )


def _restart(why: str, out: TextIO | None) -> None:
    """Replace this process with a fresh run of the same command (same pid, arguments and
    environment, plus a restart count)."""
    print(why, file=out or sys.stdout, flush=True)
    sys.stderr.flush()
    os.environ["CIFAR10_RESTARTS"] = str(int(os.environ.get("CIFAR10_RESTARTS", 0)) + 1)
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def _others_may_fail(study: optuna.Study) -> bool:
    """On a storage with heartbeats: whether trials still run elsewhere, any of which could be
    lost and need retrying. Stale ones are failed (and queued again) here and now."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if not is_heartbeat_enabled(study._storage):
        fail_dead_local_trials(study)
        return False
    optuna.storages.fail_stale_trials(study)
    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail running trials whose worker process on this machine no longer exists, and queue
    their parameters once more: what heartbeats do for database storages, for the journal file
    (which has none). Returns the failed trials' numbers."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if is_heartbeat_enabled(study._storage):
        return []  # heartbeats see every lost worker, on this machine or another
    host = socket.gethostname()
    lost = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") != host or pid is None or _alive(int(pid)):
            continue
        storage = study._storage
        try:
            storage.set_trial_user_attr(t._trial_id, "end", "lost")
            storage.set_trial_user_attr(
                t._trial_id, "end_detail", f"its worker process {pid} on {host} died; retried once"
            )
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        if not t.system_attrs.get("retried_from"):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        lost.append(t.number)
    return lost


def summary(study: optuna.Study, s: Settings, wall_s: float | None = None) -> str:
    trials = study.get_trials(deepcopy=False)
    lost = lost_trials(study)
    ends: dict[str, int] = {}
    for t in trials:
        key = end_of(t, lost)[0]
        ends[key] = ends.get(key, 0) + 1
    epochs = epochs_trained(study)
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    lines = [
        f"study {study.study_name}: {len(trials)} trials ("
        + ", ".join(f"{v} {k}" for k, v in sorted(ends.items()))
        + ")",
        f"epochs trained {epochs} of {len(counted) * s.epochs} without pruning "
        f"({len(counted)} trials x {s.epochs})",
    ]
    if wall_s is not None:
        lines.append(f"wall time {wall_s / 60:.1f} min")
    try:
        b = study.best_trial
        lines.append(f"best trial #{b.number}: validation accuracy {b.value:.4f}")
        lines.append("  " + ", ".join(f"{k}={_fmt(v)}" for k, v in b.params.items()))
    except ValueError:
        lines.append("no complete trial yet")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def best_feasible(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The complete trial with the highest validation accuracy (over-budget trials never
    complete)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise UserError(f"study {study.study_name!r} has no complete trial yet.")
    return max(done, key=lambda t: (t.value, -t.number))


BASE_COLUMNS = (
    "number", "state", "end", "value", "n_params", "latency_p50_ms", "latency_p95_ms",
    "epochs", "train_seconds", "seconds", "worker", "datetime_start", "datetime_complete",
)  # fmt: skip


def trials_frame(study: optuna.Study, space: Space | None = None):
    """One row per trial: its outcome, every parameter (``param_NAME``), size, latency, epochs
    and time. Columns are the same for every engine and every study of a space."""
    import pandas as pd

    names = [p.name for p in space.params] if space is not None else []
    lost = lost_trials(study)
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        for k in t.params:
            if k not in names:
                names.append(k)
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "end": end_of(t, lost)[0],
                "value": t.value,
                **{c: ua.get(c) for c in BASE_COLUMNS[4:11]},
                "datetime_start": t.datetime_start,
                "datetime_complete": t.datetime_complete,
                **{f"param_{k}": v for k, v in t.params.items()},
            }
        )
    columns = [*BASE_COLUMNS, *(f"param_{n}" for n in names)]
    return pd.DataFrame(rows, columns=columns)
