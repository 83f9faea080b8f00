"""One trial: sample the space, apply the point to the frozen base config, build the model,
check the budgets (an over-budget config ends in about a second and is reported to the
sampler as infeasible), train on the train split reporting validation accuracy after every
epoch, and record how it ended (:class:`~search.record.End`).

The trainer is injected (``Objective(settings, split, train=...)``): tests give a fake one,
and the KerasTuner engine drives the same steps with its own loop. To record something new
about every trial: an :class:`~search.record.Attr` key, set in :meth:`Objective.prepare`,
:meth:`~Objective.conclude` or :meth:`~Objective._end`.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from search import budget
from search.config import Config
from search.data import Split
from search.record import Attr, End, count_live
from search.schedulers import Job, PrunerScheduler, Scheduler
from search.settings import Settings
from search.storage import first_line

Trainer = Callable[..., Any]  # (model, config, split, *, on_epoch, verbose) -> RunResult

# search.training and search.models (Keras, TensorFlow) are imported inside the methods that
# train or build: the commands that read a study (status, plots) import this module, not Keras.


@dataclass(frozen=True)
class WorkerContext:
    """Who runs the trials: recorded with each one. Passed from the command line down."""

    index: int = 0  # this worker's number among the study's local workers
    count: int = 1  # how many local workers the command started
    restarts: int = 0  # how often this worker process replaced itself (memory recycling)
    started_at: float = field(default_factory=time.time)  # the command's start, across restarts

    @property
    def prefix(self) -> str:
        return f"[w{self.index}] " if self.count > 1 else ""


class Surplus(Exception):
    """Another worker's trial already fills the study's target."""


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _default_train(*args: Any, **kwargs: Any) -> Any:
    from search.training import train

    return train(*args, **kwargs)


class Objective:
    """Train one sampled config and return its final validation accuracy.

    The steps (:meth:`prepare`, :meth:`reporter`, :meth:`conclude`, inside :meth:`recording`)
    are public so the KerasTuner engine records its trials exactly the same way."""

    def __init__(
        self,
        settings: Settings,
        split: Split | None,
        *,
        train: Trainer | None = None,
        context: WorkerContext | None = None,
        scheduler: Scheduler | None = None,
    ):
        self.settings, self.split = settings, split
        self.train = train or _default_train
        self.context = context or WorkerContext()
        self.scheduler = scheduler or PrunerScheduler(settings)
        self.space, self.base, self.limits = settings.space(), settings.base(), settings.limits()
        self.bars_row: int | None = None  # draw the trial's progress bars from this screen row

    def __call__(self, trial: optuna.Trial) -> float:
        """Run the job the trial stands for (:mod:`search.schedulers`), start to stop."""
        t0 = time.perf_counter()
        job = self.scheduler.job(trial)
        if not job.resumes and count_live(trial.study, before=trial.number) >= self.settings.trials:
            self._end(trial, End.SURPLUS, "the study's target was reached by other workers", t0)
            raise Surplus("target reached")
        with self.recording(trial, t0), tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp) / "state"
            if job.resumes:
                config, model = self.resume(trial, job, state)
            else:
                config, model = self.prepare(trial, t0)
                ran = self._ran_before(trial, config)
                if ran is not None:
                    return self._same_as(trial, ran, t0)
            kwargs = {} if self.bars_row is None else {"progress": self.bars_row}
            if job.resumes or job.stop < self.settings.epochs:  # keeps its state to pause
                kwargs.update(backup_dir=state, pause_at=job.stop)
            branch_at = self._branches_at(config, job.stop)
            r = self.train(
                model, config, self.split, on_epoch=self.reporter(trial, job, branch_at),
                verbose=False, **kwargs,
            )  # fmt: skip
            if r.rung_value is not None:  # a wsd job that paused: its cooldown branch scored it
                self.scheduler.on_epoch(trial, job, r.epochs, r.rung_value)
                epochs = r.cooldown_steps / self._steps_per_epoch(config)
                trial.set_user_attr(Attr.COOLDOWN_EPOCHS, round(epochs, 4))
            self.scheduler.on_end(trial, job, r, state if r.status == "paused" else None)
            if r.status == "complete" and r.epochs >= self.settings.epochs:
                self._score_tta(trial, config, model)
            return self.conclude(trial, r, t0)

    def _score_tta(self, trial: optuna.Trial, config: Config, model: Any) -> None:
        """A finished config's validation accuracy at every TTA level (6 forward passes of
        the validation images, seconds against its training's minutes): what the race would
        train it again for. Only on the race's split (all but the validation images): a
        trial on a subset is never the race's run."""
        from search.evaluate import tta_scores

        if config.train_size is not None:
            return
        scores = tta_scores(model, self.split.x_val, self.split.y_val, level=2)
        trial.set_user_attr(Attr.VAL_TTA, {k: round(v["accuracy"], 6) for k, v in scores.items()})

    def _ran_before(self, trial: optuna.Trial, config: Config):
        """A complete trial of the same config, if there is one: a sampler may draw a config
        again (likelier the fewer a space's choices), and training it again would cost a whole
        run for the figure the study already has."""
        for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if Config.from_dict(t.user_attrs[Attr.CONFIG]) == config:
                return t
        return None

    def _same_as(self, trial: optuna.Trial, ran, t0: float) -> float:
        """Complete a trial that drew the config ``ran`` completed, with its value and its
        TTA levels, training nothing. It counts towards the study's target, so a space with
        fewer configs than the target still ends."""
        trial.set_user_attr(Attr.SAME_AS, ran.number)
        trial.set_user_attr(Attr.EPOCHS, 0)
        trial.set_user_attr(Attr.TRAIN_SECONDS, 0.0)
        if Attr.VAL_TTA in ran.user_attrs:
            trial.set_user_attr(Attr.VAL_TTA, ran.user_attrs[Attr.VAL_TTA])
        detail = f"the same config as trial {ran.number}: its value, not trained again"
        self._end(trial, End.COMPLETE, detail, t0)
        return float(ran.value)

    def _branches_at(self, config: Config, stop: int) -> int | None:
        """The epoch whose score a cooldown branch gives (a wsd job that pauses before the
        decay), else None."""
        if stop >= self.settings.epochs:
            return None
        from search.training import cooldown_steps

        return stop if cooldown_steps(config, stop, self._steps_per_epoch(config)) else None

    def _steps_per_epoch(self, config: Config) -> int:
        from search.training import steps_per_epoch

        return steps_per_epoch(config, self.split)

    @contextlib.contextmanager
    def recording(self, trial: optuna.Trial, t0: float) -> Iterator[None]:
        """Record why a trial ended when it ends with an exception."""
        try:
            yield
        except (optuna.TrialPruned, Surplus):
            raise
        except KeyboardInterrupt:
            self._end(trial, End.INTERRUPTED, "stopped by Ctrl-C (SIGINT)", t0)
            raise
        except Exception as e:
            tb = traceback.format_exc(limit=8)
            self._end(trial, End.ERROR, f"{type(e).__name__}: {first_line(e)}\n{tb[-1500:]}", t0)
            raise

    def prepare(self, trial: optuna.Trial, t0: float):
        """Sample the config, build its model and check the budgets (``TrialPruned`` when
        over budget: the sampler sees the trial as infeasible through its constraints)."""

        trial.set_user_attr(Attr.HOST, socket.gethostname())
        trial.set_user_attr(Attr.PID, os.getpid())
        params = self.space.suggest(trial)
        config = self.space.apply(params, self.base)
        trial.set_user_attr(Attr.CONFIG, config.to_dict())
        model = self._fresh_model(config)
        m = budget.measure(model, warmup=10, runs=50)
        trial.set_user_attr(Attr.N_PARAMS, m.params)
        trial.set_user_attr(Attr.LATENCY_P50, round(m.latency_p50_ms, 3))
        trial.set_user_attr(Attr.LATENCY_P95, round(m.latency_p95_ms, 3))
        trial.set_constraint("params", m.params - (self.limits.max_params - 1))
        trial.set_constraint("latency_ms", m.latency_p50_ms - self.limits.max_latency_ms)
        over = budget.violations(m, self.limits)
        if over:
            trial.set_user_attr(Attr.EPOCHS, 0)
            self._end(trial, End.OVER_BUDGET, "; ".join(over), t0)
            raise optuna.TrialPruned("over budget: " + "; ".join(over))
        return config, model

    def resume(self, trial: optuna.Trial, job: Job, state: Path) -> tuple[Config, Any]:
        """A resumed job: its parent's config and measurements, its model built again and
        its training state unpacked into ``state`` (by the scheduler) for the trainer."""
        parent = trial.study.get_trials(deepcopy=False)[job.resume_of]
        trial.set_user_attr(Attr.HOST, socket.gethostname())
        trial.set_user_attr(Attr.PID, os.getpid())
        params = self.space.suggest(trial)  # the parent's, enqueued with this trial
        assert params == parent.params, (params, parent.params)
        for key in (Attr.CONFIG, Attr.N_PARAMS, Attr.LATENCY_P50, Attr.LATENCY_P95):
            trial.set_user_attr(key, parent.user_attrs[key])
        config = Config.from_dict(parent.user_attrs[Attr.CONFIG], where=f"trial {parent.number}")
        self.scheduler.restore(job, state)
        return config, self._fresh_model(config)

    def _fresh_model(self, config: Config) -> Any:
        """The config's model, built after the previous trial's graphs are let go."""
        import keras

        from search.models import build_model

        keras.backend.clear_session(free_memory=True)  # a full gc.collect() included
        return build_model(config, whiten_images=self.split.x_train)

    def reporter(
        self, trial: optuna.Trial, job: Job | None = None, scored_later: int | None = None
    ) -> Callable[[int, dict[str, float]], bool]:
        """The per-epoch hook: the scheduler hears each epoch's validation accuracy and says
        whether to stop (``job``: the trial's, else from epoch 0 to the study's last).
        ``scored_later``: an epoch not reported here (its cooldown branch's score is)."""
        job = job or Job(0, self.settings.epochs)

        def hook(epoch: int, logs: dict[str, float]) -> bool:
            if epoch == scored_later:
                return False
            value = float(logs.get("val_accuracy", float("nan")))
            return self.scheduler.on_epoch(trial, job, epoch, value)

        return hook

    def conclude(self, trial: optuna.Trial, r: Any, t0: float) -> float:
        """Record a finished training run; ``TrialPruned`` unless it ran to the study's epochs
        (a paused job's state was kept by the scheduler's ``on_end``)."""
        trial.set_user_attr(Attr.EPOCHS, len(r.history.get("loss", [])))  # trained in this trial
        trial.set_user_attr(Attr.TRAIN_SECONDS, round(r.seconds, 2))
        if r.status == "paused":
            self._end(trial, End.PAUSED, f"paused at epoch {r.epochs}", t0)
            raise optuna.TrialPruned(f"paused at epoch {r.epochs}")
        if r.status == "pruned":
            self._end(trial, End.PRUNED, f"pruned at epoch {r.epochs}", t0)
            raise optuna.TrialPruned(f"pruned at epoch {r.epochs}")
        if r.status == "diverged":
            self._end(trial, End.DIVERGED, f"loss not finite at epoch {r.epochs}", t0)
            raise optuna.TrialPruned(f"diverged at epoch {r.epochs}")
        if r.status == "complete" and r.epochs < self.settings.epochs:  # a Hyperband round
            detail = f"pruned at epoch {r.epochs} by the tuner's schedule"
            self._end(trial, End.PRUNED, detail, t0)
            raise optuna.TrialPruned(f"stopped at epoch {r.epochs}")
        self._end(trial, End.COMPLETE, f"{r.status} after {r.epochs} epochs", t0)
        return float(r.val_accuracy)

    def _end(self, trial: optuna.Trial, end: End, detail: str, t0: float) -> None:
        trial.set_user_attr(Attr.END, end.value)
        trial.set_user_attr(Attr.END_DETAIL, detail)
        trial.set_user_attr(Attr.SECONDS, round(time.perf_counter() - t0, 2))
        trial.set_user_attr(Attr.RSS_MB, round(rss_mb(), 1))
        trial.set_user_attr(Attr.WORKER, str(self.context.index))
        trial.set_user_attr(Attr.RESTARTS, self.context.restarts)
