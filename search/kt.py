"""The KerasTuner engine: the same space files, budgets, trials and results as the Optuna one.

A space compiles to a predeclared ``keras_tuner.HyperParameters`` (``when`` conditions become
conditional scopes). Every KerasTuner trial is mirrored, as it runs, into a trial of the study's
Optuna storage, recorded by the very same :class:`~search.objective.Objective` steps: so
``status``, ``plots``, the report, the dashboard, retrain and test work on either engine.
A Hyperband round that stops a config before the study's epochs is recorded as pruned.
:func:`run_kerastuner` is an engine with ``search.worker.Engine``'s signature.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from typing import Any, TextIO

import keras_tuner as kt
import optuna
from optuna.trial import TrialState

from search.data import Source, split_for
from search.objective import Objective, Trainer, WorkerContext
from search.record import Attr
from search.report import progress_line
from search.settings import Settings, remaining
from search.space import Space
from search.storage import study_dir
from search.training import compile_for_training, fit, steps_per_epoch


class _TargetReached(kt.errors.FatalError):
    """The study's target (trials, deadline, epoch budget) is reached: end the search."""


def hyperparameters(space: Space) -> kt.HyperParameters:
    """The space as KerasTuner hyperparameters, declared up front, conditions included."""
    hp = kt.HyperParameters()
    for p in space.params:
        with contextlib.ExitStack() as scopes:
            for parent, values in p.when.items():
                scopes.enter_context(hp.conditional_scope(parent, list(values)))
            if p.type == "float":
                hp.Float(p.name, p.low, p.high, step=p.step, sampling="log" if p.log else "linear")
            elif p.type == "int":
                hp.Int(
                    p.name,
                    int(p.low),
                    int(p.high),
                    step=int(p.step or 1),
                    sampling="log" if p.log else "linear",
                )
            else:
                hp.Choice(p.name, list(p.choices), ordered=False)
    return hp


def active_values(space: Space, hp: kt.HyperParameters) -> dict[str, Any]:
    return {p.name: hp.get(p.name) for p in space.params if hp.is_active(p.name)}


class SpaceHyperModel(kt.HyperModel):
    """Build: a mirrored Optuna trial, the config, its budget check, the compiled training
    model. Fit: our training loop with KerasTuner's callbacks, reported to the mirror."""

    def __init__(self, study: optuna.Study, settings: Settings, objective: Objective, out: TextIO):
        super().__init__()
        self.study, self.settings, self.objective, self.out = study, settings, objective, out
        self.pending: tuple[optuna.Trial, Any, float] | None = None

    def build(self, hp: kt.HyperParameters):
        if remaining(self.study, Settings.of(self.study)) <= 0:
            raise _TargetReached("the study's target is reached")
        params = active_values(self.objective.space, hp)
        self.study.enqueue_trial(params, user_attrs={Attr.ENGINE: "kerastuner"})
        trial = self.study.ask()
        t0 = time.perf_counter()
        try:
            with self.objective.recording(trial, t0):
                config, model = self.objective.prepare(trial, t0)
                train_model = compile_for_training(
                    model, config, steps_per_epoch(config, self.objective.split)
                )
        except optuna.TrialPruned as e:  # over budget: refused right after build
            self._tell(trial, state=TrialState.PRUNED)
            raise kt.errors.FailedTrialError(str(e)) from None
        except Exception:
            self._tell(trial, state=TrialState.FAIL)
            raise
        self.pending = (trial, config, t0)
        return train_model

    def fit(self, hp, model, *args, callbacks=None, epochs=None, initial_epoch=0, **kwargs):
        trial, config, t0 = self.pending
        trial.set_user_attr(Attr.INITIAL_EPOCH, initial_epoch)
        try:
            with self.objective.recording(trial, t0):
                r = fit(
                    model,
                    config,
                    self.objective.split,
                    on_epoch=self.objective.reporter(trial),
                    callbacks=callbacks,
                    epochs=epochs,
                    initial_epoch=initial_epoch,
                    verbose=False,
                )
                value = self.objective.conclude(trial, r, t0)
            self._tell(trial, value)
        except optuna.TrialPruned:
            self._tell(trial, state=TrialState.PRUNED)
        except Exception:
            self._tell(trial, state=TrialState.FAIL)
            raise
        acc = r.val_accuracy
        return {"val_accuracy": acc if acc is not None and acc == acc else 0.0}

    def _tell(self, trial: optuna.Trial, value: float | None = None, state=None) -> None:
        frozen = self.study.tell(trial, value, state=state)
        print(progress_line(self.study, frozen), file=self.out, flush=True)


def tuner_seed(seed: int) -> int:
    """KerasTuner's seed for a study seed. Its oracle treats 0 as "unseeded" (a random seed)
    and draws the k-th sampled value from ``random.Random(seed + k)``, so nearby seeds replay
    each other's values shifted by one: space the streams far apart, and never pass 0."""
    return 1 + seed * 1_000_003


def _predeclared(tuner_class: type) -> type:
    """The tuner, minus its start-up builds that discover conditional hyperparameters: ours
    are all declared up front, and every build here is a real, recorded trial."""

    class Tuner(tuner_class):
        def _populate_initial_space(self) -> None:
            pass

    return Tuner


def run_kerastuner(
    study: optuna.Study,
    settings: Settings,
    source: Source,
    *,
    context: WorkerContext,
    out: TextIO,
    recycle: bool = False,
    train: Trainer | None = None,
) -> None:
    """Run a KerasTuner search over the study's space until its target is reached. One
    process (no recycling: the tuner's state lives in it); KerasTuner drives the training
    loop (``search.training.fit``), so ``train`` is not used."""
    split = split_for(settings.base(), source)
    objective = Objective(settings, split, context=context)
    hm = SpaceHyperModel(study, settings, objective, out)
    common = dict(
        hypermodel=hm,
        objective=kt.Objective("val_accuracy", "max"),
        hyperparameters=hyperparameters(objective.space),
        tune_new_entries=False,
        allow_new_entries=False,
        seed=tuner_seed(settings.seed),
        directory=str(study_dir(study.study_name) / "kerastuner"),
        project_name=settings.tuner,
        overwrite=False,
        max_consecutive_failed_trials=10**6,  # over-budget configs fail on purpose
    )
    if settings.tuner == "hyperband":
        tuner = _predeclared(kt.Hyperband)(
            max_epochs=settings.epochs, factor=3, hyperband_iterations=1000, **common
        )
    elif settings.tuner == "bayesian":
        tuner = _predeclared(kt.BayesianOptimization)(max_trials=settings.trials * 10, **common)
    else:
        tuner = _predeclared(kt.RandomSearch)(max_trials=settings.trials * 10, **common)
    with contextlib.suppress(_TargetReached), warnings.catch_warnings():
        # Hyperband reloads a model's weights to continue it, not its optimizer: expected
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        tuner.search(epochs=settings.epochs, verbose=0)
