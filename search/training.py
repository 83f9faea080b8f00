"""Compile and fit a model from a config, with a per-epoch hook for the search's pruner.

The loop is ``model.fit`` with a few callbacks, fed by :func:`~search.callbacks.pipelines`
(no stall between epochs): faster than a plain ``fit`` here (``benchmarks/throughput.py``). A
NaN or infinite loss ends the run with status ``diverged``.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from search import STOP
from search.augment import AlternatingFlip, with_augmentation
from search.callbacks import (
    EpochOrder,
    FreezeWhitenBias,
    Lookahead,
    ProgressBars,
    SetEpoch,
    pipelines,
)
from search.config import Config
from search.data import NUM_CLASSES, Split
from search.optim import Schedule, make_optimizer
from search.progress import say

# on_epoch(epoch, logs) -> True to stop the run (the search prunes here). epoch counts from 1.
EpochHook = Callable[[int, dict[str, float]], bool]


def _sublayers(layer: keras.layers.Layer):
    for sub in getattr(layer, "layers", []):
        yield sub
        yield from _sublayers(sub)


# Training steps per call into the compiled train function. 1: on this CPU, 8 saves 0.65-1.4 ms
# of Keras' cost per step, but tracing its loop costs 0.3-0.7 s more (a first fit of the seed
# CNN), a loss for trials under about 500-1,000 steps (benchmarks/throughput.py --presets with
# no preset). Worth raising where steps are cheap and trials long (an accelerator).
STEPS_PER_EXECUTION = 1


def default_steps_per_execution(config: Config) -> int:
    """:data:`STEPS_PER_EXECUTION`, or 1 where a callback must act after every single step
    (lookahead's pull every 5 steps, the frozen whitening bias): Keras calls per-batch
    callbacks once per execution, so those configs would train differently."""
    if config.lookahead or config.whiten_bias_epochs:
        return 1
    return STEPS_PER_EXECUTION


def compile_for_training(
    model: keras.Model,
    config: Config,
    steps_per_epoch: int,
    *,
    steps_per_execution: int | None = None,
) -> keras.Model:
    """The model behind its augmentation, compiled with the config's optimizer and loss;
    ``steps_per_execution`` (default: :func:`default_steps_per_execution`) as Keras'."""
    train_model = with_augmentation(model, config)
    train_model.compile(
        optimizer=make_optimizer(config, steps_per_epoch * config.epochs),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.label_smoothing
        ),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution or default_steps_per_execution(config),
    )
    return train_model


def one_hot(y: np.ndarray) -> np.ndarray:
    return np.eye(NUM_CLASSES, dtype="float32")[np.asarray(y).reshape(-1)]


@dataclass
class RunResult:
    status: str  # complete | paused | pruned | diverged | early_stopped
    epochs: int  # epochs trained in this run, resumed ones included
    seconds: float  # training wall time (fit only, no setup)
    history: dict[str, list[float]] = field(default_factory=dict)
    # a wsd run paused before its decay: the validation accuracy after a cooldown branch from
    # the pause (what the run would score had it ended there), and the branch's length
    rung_value: float | None = None
    cooldown_steps: int = 0

    @property
    def val_accuracy(self) -> float | None:
        v = self.history.get("val_accuracy")
        return float(v[-1]) if v else None


HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


class _Watch(keras.callbacks.Callback):
    """Per-epoch bookkeeping: the hook, divergence, learning rate, timing, a progress line and
    ``history.csv`` (continued, not restarted, when a backed-up run resumes)."""

    def __init__(
        self,
        config: Config,
        n_train: int,
        hook: EpochHook | None,
        verbose: bool,
        history_csv: Path | None,
    ):
        super().__init__()
        self.config, self.n_train, self.hook, self.verbose = config, n_train, hook, verbose
        self.csv = history_csv
        self.status = "complete"
        self.epochs = 0
        self.rows: list[dict[str, float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        if self.csv is not None and not self.rows:
            _truncate_csv(self.csv, epoch)  # a resumed run redoes epochs after the backup
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if STOP.is_set():
            raise KeyboardInterrupt("stopped by SIGINT")

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        dt = time.perf_counter() - self.t0
        self.epochs = epoch + 1
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {
            "epoch": epoch + 1,
            **{k: float(v) for k, v in logs.items()},
            "lr": lr,
            "seconds": dt,
        }
        row = {k: row.get(k, float("nan")) for k in HISTORY_COLUMNS}
        self.rows.append(row)
        if self.csv is not None:
            with open(self.csv, "a", newline="") as f:
                csv.writer(f).writerow([row[k] for k in HISTORY_COLUMNS])
        if self.verbose:
            parts = [f"epoch {epoch + 1}/{self.config.epochs}"]
            parts += [f"{k} {logs[k]:.4f}" for k in HISTORY_COLUMNS[1:5] if k in logs]
            parts += [f"lr {lr:.3g}", f"{dt:.0f}s ({self.n_train / dt:.0f} img/s)"]
            say("  ".join(parts))
        if not math.isfinite(row["loss"]):
            self.status = "diverged"
            self.model.stop_training = True
            return
        if self.hook is not None and self.hook(epoch + 1, logs):
            self.status = "pruned"
            self.model.stop_training = True


def _truncate_csv(path: Path, epochs_kept: int) -> None:
    """Keep the header and the rows of the first ``epochs_kept`` epochs of ``path``."""
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f)][1:]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HISTORY_COLUMNS)
        w.writerows(r for r in rows if r and int(r[0]) <= epochs_kept)


def read_history(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def train(
    model: keras.Model,
    config: Config,
    split: Split,
    *,
    on_epoch: EpochHook | None = None,
    verbose: bool = True,
    backup_dir: str | Path | None = None,
    history_csv: str | Path | None = None,
    pause_at: int | None = None,
    progress: int | None = None,
) -> RunResult:
    """Train ``model`` (built by ``build_model``) in place on ``split`` as ``config`` says.

    With ``backup_dir``, the training state is saved after every epoch and a rerun with the
    same folder resumes after the last finished epoch (with ``pause_at``, the run stops after
    that epoch, to be resumed: see :func:`fit`). With ``history_csv``, each epoch's metrics
    are appended there as it ends. ``progress``: draw progress bars from this screen row.
    """
    train_model = compile_for_training(model, config, steps_per_epoch(config, split))
    return fit(
        train_model,
        config,
        split,
        on_epoch=on_epoch,
        verbose=verbose,
        backup_dir=backup_dir,
        history_csv=history_csv,
        pause_at=pause_at,
        progress=progress,
    )


def steps_per_epoch(config: Config, split: Split) -> int:
    return math.ceil(len(split.x_train) / config.batch_size)


def fit(
    train_model: keras.Model,
    config: Config,
    split: Split,
    *,
    on_epoch: EpochHook | None = None,
    verbose: bool = True,
    backup_dir: str | Path | None = None,
    history_csv: str | Path | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    epochs: int | None = None,
    initial_epoch: int = 0,
    pause_at: int | None = None,
    progress: int | None = None,
) -> RunResult:
    """``fit`` a model from :func:`compile_for_training`: the loop under :func:`train`.
    ``callbacks``, ``epochs`` and ``initial_epoch`` let another driver (KerasTuner's
    Hyperband) continue a run; the learning-rate schedule still spans ``config.epochs``.

    ``pause_at`` (with ``backup_dir``): stop after that epoch, keeping the whole training
    state in ``backup_dir`` (weights, optimizer slots and step, epoch, lookahead's slow copy);
    a later call with the same folder continues exactly as if it had never stopped: the data
    order and every random draw depend only on the seed and the epoch."""
    n = len(split.x_train)
    has_val = len(split.x_val) > 0
    pausing = pause_at is not None and pause_at < config.epochs
    if pausing and backup_dir is None:
        raise ValueError("pause_at needs a backup_dir to keep the training state in")
    extra = list(callbacks or [])
    watch = _Watch(config, n, on_epoch, verbose, Path(history_csv) if history_csv else None)
    layers = list(_sublayers(train_model))
    flips = [layer for layer in layers if isinstance(layer, AlternatingFlip)]
    seed_states = [v for v in train_model.variables if "seed_generator_state" in v.path]
    order = EpochOrder(split.x_train, one_hot(split.y_train), config.batch_size, config.seed)
    callbacks: list[keras.callbacks.Callback] = [SetEpoch(order, flips, seed_states, config.seed)]
    if config.whiten_bias_epochs:
        whiten = next(layer for layer in layers if layer.name == "whiten")
        callbacks.append(FreezeWhitenBias(whiten.bias, config.whiten_bias_epochs))
    if config.lookahead:  # before the rest, which see the pulled weights
        state = Path(backup_dir) / "lookahead.npz" if backup_dir is not None else None
        total = steps_per_epoch(config, split) * config.epochs
        callbacks.append(Lookahead(total, state_file=state, pausing=pausing))
    keepers = list(callbacks)  # what a cooldown branch drives by hand, step by step
    if backup_dir is not None:
        Path(backup_dir).mkdir(parents=True, exist_ok=True)
        callbacks.append(
            keras.callbacks.BackupAndRestore(str(backup_dir), delete_checkpoint=not pausing)
        )
    if config.ema > 0:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    callbacks.append(watch)  # after the EMA swap: it sees the validation of the EMA weights
    if config.plateau:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss" if has_val else "loss", factor=0.5, patience=2, verbose=0
            )
        )
    stopper = None
    if config.early_stop and has_val:
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=config.early_stop, mode="max"
        )
        callbacks.append(stopper)
    if progress is not None:
        bars = ProgressBars(config.epochs, len(order), config.batch_size, row=progress)
        callbacks.append(bars)
    t0 = time.perf_counter()
    try:
        train_data, val_data = pipelines(
            order, split.x_val, one_hot(split.y_val), config.batch_size
        )
        train_model.fit(
            train_data,
            epochs=pause_at if pausing else (epochs or config.epochs),
            initial_epoch=initial_epoch,
            validation_data=val_data if has_val else None,
            validation_batch_size=config.batch_size if isinstance(val_data, tuple) else None,
            callbacks=callbacks + extra,
            shuffle=False,  # EpochOrder shuffles, by seed and epoch (Keras would reorder batches)
            verbose=0,
        )
    finally:
        if progress is not None:
            bars.on_train_end()  # also after Ctrl-C, so the terminal is left tidy
    seconds = time.perf_counter() - t0
    history = {k: [r[k] for r in watch.rows] for k in HISTORY_COLUMNS[1:]}
    status = watch.status
    if status == "complete" and stopper is not None and stopper.stopped_epoch > 0:
        status = "early_stopped"
    if status == "complete" and pausing and watch.epochs < config.epochs:
        status = "paused"
    if verbose and status not in ("complete", "paused"):
        print(f"training ended: {status} after epoch {watch.epochs}", file=sys.stderr, flush=True)
    result = RunResult(status=status, epochs=watch.epochs, seconds=seconds, history=history)
    length = cooldown_steps(config, watch.epochs, len(order)) if status == "paused" else 0
    if length:
        t1 = time.perf_counter()
        result.rung_value = cooldown_branch(
            train_model, config, split, order, keepers, watch.epochs, length
        )
        result.cooldown_steps = length
        result.seconds += time.perf_counter() - t1
        if verbose:
            say(
                f"cooldown branch at epoch {watch.epochs}: {result.cooldown_steps} steps, "
                f"val_accuracy {result.rung_value:.4f}"
            )
    return result


def cooldown_steps(config: Config, epoch: int, steps: int) -> int:
    """The length of a wsd run's cooldown branch from the end of ``epoch`` (``steps`` per
    epoch): ``cooldown / (1 - cooldown)`` of the steps so far, so the branch ends a
    warmup-stable-decay run of ``epoch / (1 - cooldown)`` epochs whose last ``cooldown``
    fraction decays. 0 where none is run: another schedule, or a trunk already decaying."""
    if config.schedule != "wsd":
        return 0
    start = epoch * steps
    if start >= round((1.0 - config.cooldown) * config.epochs * steps):
        return 0
    return max(1, round(config.cooldown / (1.0 - config.cooldown) * start))


def cooldown_branch(
    train_model: keras.Model,
    config: Config,
    split: Split,
    order: EpochOrder,
    keepers: list[keras.callbacks.Callback],
    epoch: int,
    length: int,
) -> float:
    """Score a wsd run paused after ``epoch`` as if it ended there: train on for ``length``
    steps (:func:`cooldown_steps`) with the learning rate falling linearly from the peak to 0,
    then validate. It changes the model in memory only: the pause's checkpoint (written by
    ``fit`` before this) is what a promotion resumes, so nothing of the branch leaks into the
    continued run. ``keepers``: the run's state callbacks (data order and random draws by
    epoch, the whitening-bias freeze, lookahead, which ends the branch on its slow copy as a
    run's end does), driven here batch by batch as ``fit`` drives them."""
    spe = len(order)
    start = epoch * spe
    schedule = train_model.optimizer._learning_rate  # Keras keeps the schedule object here
    assert isinstance(schedule, Schedule), schedule
    schedule.decay_start, schedule.decay_end = start, start + length
    train_model.train_function = None  # traced with the old decay: trace again
    for cb in keepers:
        if isinstance(cb, Lookahead):
            cb.total = start + length  # averaging ramps up to the branch's end
    done, e = 0, epoch
    while done < length:
        for cb in keepers:
            cb.on_epoch_begin(e)
        order.on_epoch_begin()
        for i in range(min(spe, length - done)):
            x, y = order[i]
            train_model.train_on_batch(x, y)
            for cb in keepers:
                cb.on_train_batch_end(i)
            done += 1
        e += 1
    scores = train_model.evaluate(
        split.x_val, one_hot(split.y_val), batch_size=config.batch_size, verbose=0,
        return_dict=True,
    )  # fmt: skip
    return float(scores["accuracy"])
