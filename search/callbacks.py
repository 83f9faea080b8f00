"""The training loop's state keepers: lookahead's slow copy, the data order and random draws
keyed by (seed, epoch) so a paused run resumes exactly, and the whitening bias freeze. To add
one: a callback here, added in ``training.fit`` where its order among the others matters."""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np

from search.augment import AlternatingFlip
from search.progress import bar


def every_step(callback: keras.callbacks.Callback) -> None:
    """Refuse a model compiled to run several steps per call: Keras then calls per-batch
    callbacks once per call, and ``callback`` must act after every step."""
    n = getattr(callback.model, "steps_per_execution", 1)
    if n != 1:
        raise ValueError(
            f"{type(callback).__name__} acts after every training step; compile the model "
            f"with steps_per_execution=1, not {n}"
        )


class Lookahead(keras.callbacks.Callback):
    """airbench's lookahead: every ``every`` steps the weights (BatchNorm statistics too) move
    to a slow copy pulled toward them, ``slow += (1 - decay) * (w - slow); w = slow``, with
    ``decay = 0.95**5 * (step / total)**3``: no averaging early, strong averaging late. At the
    end of training the weights are the slow copy, except at a pause (``pausing``): then the
    run goes on later from where it stopped. With ``state_file`` the slow copy and the step
    are saved after every epoch and a resumed run starts from them."""

    def __init__(
        self,
        total_steps: int,
        every: int = 5,
        *,
        state_file: Path | None = None,
        pausing: bool = False,
    ):
        super().__init__()
        self.total, self.every, self.step = max(total_steps, 1), every, 0
        self.state_file, self.pausing = state_file, pausing

    def on_train_begin(self, logs=None):
        every_step(self)
        self.vars = [v for v in self.model.weights if "float" in str(v.dtype)]
        if self.state_file is not None and self.state_file.exists():
            with np.load(self.state_file) as saved:
                self.step = int(saved["step"])
                self.slow = [saved[f"slow{i}"] for i in range(len(self.vars))]
        else:
            self.slow = [keras.ops.convert_to_numpy(v) for v in self.vars]

    def _pull(self, decay: float) -> None:
        for v, s in zip(self.vars, self.slow):
            s += (1.0 - decay) * (keras.ops.convert_to_numpy(v) - s)
            v.assign(s)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0:
            self._pull(0.95**5 * (min(self.step, self.total) / self.total) ** 3)
        if self.step == self.total:  # end on the slow copy before the last validation, so
            self._pull(1.0)  # a run's (and a trial's) last figure is the saved weights'

    def on_epoch_end(self, epoch, logs=None):
        if self.state_file is not None:
            slow = {f"slow{i}": s for i, s in enumerate(self.slow)}
            tmp = self.state_file.with_name(self.state_file.name + ".tmp.npz")
            np.savez(tmp, step=self.step, **slow)
            tmp.replace(self.state_file)

    def on_train_end(self, logs=None):
        if not self.pausing or self.model.stop_training:
            self._pull(1.0)


class EpochOrder(keras.utils.PyDataset):
    """The training images in an order that depends only on the seed and the epoch, so a run
    paused after any epoch and resumed in another process sees the same batches as one that
    ran straight through. :class:`SetEpoch` tells it the epoch before each one starts."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epoch, self.order = 0, np.arange(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        return self.x[idx], self.y[idx]

    def on_epoch_begin(self) -> None:
        self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))


def pipelines(order: EpochOrder, x_val: np.ndarray, y_val: np.ndarray, batch_size: int):
    """The training and validation data as ``fit`` takes them: on TensorFlow, ``tf.data``
    pipelines with autotuning off; on other backends, ``order`` and the arrays as they are.

    Keras wraps a ``PyDataset`` and arrays in pipelines that autotune; each epoch it makes a
    new iterator, and deleting the last one waits for the autotuner's thread to wake, 0 to 5 s
    here (seen in the native stack: ``~RootDataset::Iterator`` in ``WaitForNotification``), in
    about half the epochs and at the end of ``fit``: up to a third of a short trial's time. The
    batches are the same: ``order``'s, its epoch's permutation made when the epoch's iterator
    starts, after :class:`SetEpoch` has set the epoch."""
    if keras.config.backend() != "tensorflow":
        return order, (x_val, y_val)
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False

    def batches():
        order.on_epoch_begin()
        for i in range(len(order)):
            yield order[i]

    spec = (
        tf.TensorSpec((None, *order.x.shape[1:]), order.x.dtype),
        tf.TensorSpec((None, *order.y.shape[1:]), order.y.dtype),
    )
    train = tf.data.Dataset.from_generator(batches, output_signature=spec)
    train = train.apply(tf.data.experimental.assert_cardinality(len(order)))  # Keras counts
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(batch_size)
    return tuple(d.prefetch(2).with_options(options) for d in (train, val))


class SetEpoch(keras.callbacks.Callback):
    """Before each epoch: the data order's epoch, the alternating-flip layers' epoch, and every
    random layer's generator state set from (seed, epoch), so augmentation and dropout draw
    the same numbers in an epoch however the run got there (straight, or paused and resumed)."""

    def __init__(self, order: EpochOrder, flips: list[AlternatingFlip], seed_states: list, seed):
        super().__init__()
        self.order, self.flips, self.seed_states, self.seed = order, flips, seed_states, seed

    def on_epoch_begin(self, epoch, logs=None):
        self.order.epoch = epoch
        for layer in self.flips:
            layer.epoch.assign(epoch)
        for i, state in enumerate(self.seed_states):
            key = (self.seed * 7919 + i) % 2**31
            state.assign(np.array([key, epoch * 2**20], dtype="uint32"))


class FreezeWhitenBias(keras.callbacks.Callback):
    """airbench trains the whitening layer's bias for the first epochs only: from epoch
    ``after`` on, every step puts it back to its value then."""

    def __init__(self, bias, after: int):
        super().__init__()
        self.bias, self.after, self.frozen = bias, after, None

    def on_train_begin(self, logs=None):
        every_step(self)

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= self.after and self.frozen is None:
            self.frozen = keras.ops.convert_to_numpy(self.bias)

    def on_train_batch_end(self, batch, logs=None):
        if self.frozen is not None:
            self.bias.assign(self.frozen)


class ProgressBars(keras.callbacks.Callback):
    """A bar over the run's epochs and one within the epoch (batches, images/s, loss), drawn
    from screen row ``row`` down (1 under a study's bar). Only added when bars are wanted
    (:func:`search.progress.wanted`); the per-epoch lines still print, above the bars."""

    def __init__(self, epochs: int, steps: int, batch_size: int, *, row: int = 0):
        super().__init__()
        self.epochs, self.steps, self.batch_size, self.row = epochs, steps, batch_size, row
        self.epoch_bar = self.batch_bar = None

    def on_train_begin(self, logs=None):
        self.epoch_bar = bar(
            total=self.epochs, desc="epochs", unit="epoch", position=self.row, leave=self.row == 0
        )

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_bar.n = epoch  # a resumed run starts past its first epochs
        self.epoch_bar.refresh()
        self.batch_bar = bar(
            total=self.steps,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            unit="batch",
            position=self.row + 1,
            leave=False,
        )

    def on_train_batch_end(self, batch, logs=None):
        b = self.batch_bar
        before = b.n
        b.update(min(batch + 1, b.total) - before)  # batch: the last step of this call
        if before == 0 or b.n == b.total or b.n // 20 > before // 20:  # reading the loss
            rate = b.format_dict["rate"]
            b.set_postfix_str(
                f"loss {float((logs or {}).get('loss', float('nan'))):.4f}"
                + (f", {rate * self.batch_size:.0f} img/s" if rate else ""),
                refresh=False,
            )  # ... waits for the step: every 20 batches, not every one

    def on_epoch_end(self, epoch, logs=None):
        self._close_batches()
        self.epoch_bar.update(1)

    def on_train_end(self, logs=None):
        self._close_batches()
        if self.epoch_bar is not None:
            self.epoch_bar.close()

    def _close_batches(self):
        if self.batch_bar is not None:
            self.batch_bar.close()
            self.batch_bar = None


class EpochTimer(keras.callbacks.Callback):
    """Each epoch's seconds in three parts: ``stall`` (from the epoch's start to its first
    training batch: the data iterator's set-up, where Keras' autotuned pipelines can wait
    seconds), ``train`` (from the first training batch to the start of validation, or to the
    epoch's end without one) and ``val``. The one timer the throughput benchmark gives both of
    its sides, so they are timed alike."""

    def __init__(self):
        super().__init__()
        self.stall: list[float] = []
        self.train: list[float] = []
        self.val: list[float] = []
        self.ends: list[float] = []  # time.perf_counter() at each epoch's end
        self._e0 = self._t0 = self._v0 = None

    def on_epoch_begin(self, epoch, logs=None):
        self._e0, self._t0, self._v0 = time.perf_counter(), None, None

    def on_train_batch_begin(self, batch, logs=None):
        if self._t0 is None and self._e0 is not None:
            self._t0 = time.perf_counter()
            self.stall.append(self._t0 - self._e0)

    def on_test_begin(self, logs=None):
        if self._t0 is not None and self._v0 is None:  # inside fit, not a separate evaluate()
            self._v0 = time.perf_counter()
            self.train.append(self._v0 - self._t0)

    def on_test_end(self, logs=None):
        if self._v0 is not None:
            self.val.append(time.perf_counter() - self._v0)

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())
        if self._v0 is None and self._t0 is not None:
            self.train.append(self.ends[-1] - self._t0)
        self._e0 = self._t0 = None
