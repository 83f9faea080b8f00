"""``--pruner promote``: asynchronous successive halving that pauses and resumes
(:class:`PromoteScheduler`; the pure rules are in :mod:`search.schedulers.asha`, this module
keeps them in a study).

How a paused config lives in an Optuna study: a config trains in *segments*, one Optuna trial
each. The first segment samples the config, trains epochs 1 to the first rung, reports each
epoch's validation accuracy, saves its training state as an artifact and ends PRUNED with
``end = "paused"``. Promoting it enqueues a new trial with the same parameters,
``resume_of = <the paused segment>``, ``start_epoch`` and ``rung``: whichever worker takes it
downloads the checkpoint, trains on to the next rung (reporting epochs ``start+1..rung``) and
pauses again, or completes at the study's epochs. So every epoch is trained and counted once,
a paused segment shows as ``promoted`` once a later segment goes on (``record.continued``), and
a resumed segment whose worker died is not retried: its parent is promotable again.

The sampler sees each config once, at the furthest segment that finished
(:class:`LatestSegments`): Optuna's TPE ranks complete trials by value, then pruned ones by
the step they reached and their value, which is the multi-fidelity order wanted here.

Promotion decisions are made under a study-wide lock (a lock file beside a journal; a
PostgreSQL advisory lock), so two workers never promote one segment twice.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.prior import Wrapper
from search.record import DONE, Attr, End, continued, promoted
from search.schedulers import asha as schedule
from search.schedulers.base import Job, Next, new_config_or_wait, report
from search.settings import Settings, out_of_budget
from search.storage import study_dir

# --- the sampler's view ---------------------------------------------------------------------


def superseded(trials: list[FrozenTrial]) -> set[int]:
    """Segments whose config has a later segment that finished: the sampler skips them."""
    return continued(trials, DONE)


class _StudyView:
    """A study as the sampler should read it: each config once, at its furthest segment.
    (Optuna's samplers read trials through the study's private ``_get_trials``, so the view
    overrides it; a sampler that read ``get_trials`` would need only the public one.)"""

    def __init__(self, study: optuna.Study):
        self._study = study

    def __getattr__(self, name: str):
        return getattr(self._study, name)

    def _get_trials(self, deepcopy=True, states=None, use_cache=False):
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        every = self._study._get_trials(deepcopy=False, states=None, use_cache=use_cache)
        skip = superseded(every)
        return [t for t in trials if t.number not in skip]

    def get_trials(self, deepcopy=True, states=None):
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self):
        return self.get_trials()


class LatestSegments(Wrapper):
    """Wrap a sampler so it reads the study through :class:`_StudyView`."""

    def infer_relative_search_space(self, study, trial):
        return self.inner.infer_relative_search_space(_StudyView(study), trial)

    def sample_relative(self, study, trial, search_space):
        return self.inner.sample_relative(_StudyView(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        view = _StudyView(study)
        return self.inner.sample_independent(view, trial, param_name, param_distribution)


# --- promotions -----------------------------------------------------------------------------


def rung_list(settings) -> list[int]:
    return schedule.rungs(settings.first_rung, settings.eta, settings.epochs, settings.trim_rungs)


def entries(trials: list[FrozenTrial], store=None) -> list[schedule.Entry]:
    """Every finished segment's record at the rung it reached; with ``store``, one whose
    checkpoint is gone counts as promoted (it cannot be)."""
    going_on = promoted(trials)
    if store is not None:  # only a paused segment not yet promoted can be chosen: look at those
        going_on |= {
            t.number for t in trials
            if t.user_attrs.get(Attr.END) == End.PAUSED and t.number not in going_on
            and not _available(store, t)
        }  # fmt: skip
    out = []
    for t in trials:
        rung = t.user_attrs.get(Attr.RUNG)
        if rung is None or t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        if t.user_attrs.get(Attr.END) not in (End.PAUSED, End.COMPLETE):
            continue
        value = t.intermediate_values.get(rung, math.nan)
        out.append(schedule.Entry(t.number, rung, value, t.number in going_on))
    return out


@contextlib.contextmanager
def study_lock(study: optuna.Study) -> Iterator[None]:
    """Hold the study-wide promotion lock: an advisory lock on PostgreSQL (workers on any
    machine), else a lock file in ``results/NAME/`` (workers on this machine: a journal file
    is local anyway)."""
    engine = getattr(study._storage, "engine", None)
    if engine is not None and engine.dialect.name == "postgresql":
        from sqlalchemy import text

        key = zlib.crc32(f"cifar10-search:{study.study_name}".encode()) - 2**31
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    import fcntl

    path = study_dir(study.study_name) / "promote.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _available(store, t: FrozenTrial) -> bool:
    artifact = t.user_attrs.get(Attr.CHECKPOINT)
    if artifact is None:
        return t.user_attrs.get(Attr.END) != End.PAUSED
    try:
        store.open_reader(artifact).close()
    except Exception:  # noqa: BLE001 - ArtifactNotFound, or a store that cannot be read
        return False
    return True


def promote_next(study: optuna.Study, settings, store=None, url: str | None = None) -> int | None:
    """Queue the next promotion, if the rules give one: a new trial that resumes the chosen
    paused segment to the next rung. Returns the paused segment's number, or None."""
    levels = rung_list(settings)
    with study_lock(study):
        trials = study.get_trials(deepcopy=False)
        # a study of fewer configs than the bootstrap promotes once they are all in
        wait = min(settings.bootstrap, settings.trials)
        e = schedule.next_promotion(entries(trials, store), levels, settings.eta, wait)
        if e is None:
            return None
        parent = trials[e.trial]
        study.enqueue_trial(
            parent.params,
            user_attrs={
                Attr.RESUME_OF: parent.number,
                Attr.START: e.rung,
                Attr.RUNG: schedule.next_rung(levels, e.rung),
            },
            skip_if_exists=False,
        )
        return parent.number


# --- checkpoints ----------------------------------------------------------------------------


def checkpoint_store(study_name: str, base: str | None = None):
    """Where paused segments keep their training state: ``results/NAME/checkpoints/`` (or
    ``base``, a folder every worker's machine sees), as an Optuna artifact store."""
    from optuna.artifacts import FileSystemArtifactStore

    path = Path(base) if base else study_dir(study_name) / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def save_checkpoint(trial: optuna.Trial, folder: Path, store) -> str:
    """Zip a training backup folder into the store, recorded on the trial."""
    from optuna.artifacts import upload_artifact

    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(shutil.make_archive(str(Path(tmp) / "checkpoint"), "zip", folder))
        artifact = upload_artifact(
            artifact_store=store, file_path=str(archive), study_or_trial=trial
        )
    trial.set_user_attr(Attr.CHECKPOINT, artifact)
    return artifact


def load_checkpoint(artifact: str, store, folder: Path) -> None:
    """Unpack a paused segment's training state into ``folder``."""
    from optuna.artifacts import download_artifact

    archive = folder.with_suffix(".zip")
    download_artifact(artifact_store=store, artifact_id=artifact, file_path=str(archive))
    with zipfile.ZipFile(archive) as z:
        z.extractall(folder)
    archive.unlink()


def needless_checkpoints(trials: list[FrozenTrial], settings) -> list[str]:
    """Checkpoints no promotion can use any more: a segment whose config went on and whose
    next segment finished; one ranked below ``trials // eta`` at its rung, where no study of
    ``trials`` configs could ever promote it. (At the study's end the others stay: started
    again with a higher ``--trials``, it may still promote them.)"""
    going_on = superseded(trials)
    by_rung: dict[int, list[schedule.Entry]] = {}
    for e in entries(trials):
        by_rung.setdefault(e.rung, []).append(e)
    hopeless = set()
    for at in by_rung.values():  # ranks only fall as more configs reach a rung
        at.sort(key=schedule.rank_key)
        hopeless |= {e.trial for e in at[settings.trials // settings.eta :]}
    return [
        t.user_attrs[Attr.CHECKPOINT]
        for t in trials
        if t.user_attrs.get(Attr.CHECKPOINT) and (t.number in going_on or t.number in hopeless)
    ]


def drop_checkpoints(study: optuna.Study, settings, store) -> int:
    """Delete the checkpoints :func:`needless_checkpoints` names; how many were deleted."""
    n = 0
    for artifact in needless_checkpoints(study.get_trials(deepcopy=False), settings):
        with contextlib.suppress(Exception):  # another worker removed it first
            store.remove(artifact)
            n += 1
    return n


# --- the scheduler --------------------------------------------------------------------------


class PromoteScheduler:
    """Promotion ASHA over a study: a free worker resumes the paused segment the rules choose
    (queued under the lock by :func:`promote_next`), else starts a new config to the first
    rung. The sampler reads the study through :class:`LatestSegments`; checkpoints no
    promotion can use are dropped before each decision."""

    def __init__(self, study: optuna.Study, settings: Settings, store=None):
        self.study, self.settings = study, settings
        self.store = store if store is not None else checkpoint_store(study.study_name)
        if not isinstance(study.sampler, LatestSegments):  # each config once, furthest segment
            study.sampler = LatestSegments(study.sampler)

    def next_job(self) -> Next:
        s = Settings.of(self.study)  # another process may have raised the target
        drop_checkpoints(self.study, s, self.store)
        if not out_of_budget(self.study, s) and promote_next(self.study, s, self.store) is not None:
            return Next.RUN
        # a segment running elsewhere may still pause and be promoted: wait for it
        return new_config_or_wait(self.study, s, running_may_queue=True)

    def job(self, trial: optuna.Trial) -> Job:
        ua = trial.user_attrs
        if Attr.RESUME_OF in ua:  # queued by promote_next
            return Job(ua[Attr.START], ua[Attr.RUNG], ua[Attr.RESUME_OF])
        trial.set_user_attr(Attr.START, 0)  # a new config: to the first rung
        trial.set_user_attr(Attr.RUNG, self.settings.first_rung)
        return Job(0, self.settings.first_rung)

    def restore(self, job: Job, folder) -> None:
        parent = self.study.get_trials(deepcopy=False)[job.resume_of]
        load_checkpoint(parent.user_attrs[Attr.CHECKPOINT], self.store, folder)

    def on_epoch(self, trial: optuna.Trial, job: Job, epoch: int, value: float) -> bool:
        report(trial, epoch, value)
        return False  # a segment is never stopped: it pauses at its rung

    def on_end(self, trial: optuna.Trial, job: Job, result, folder) -> None:
        if result.status == "paused":
            save_checkpoint(trial, folder, self.store)
