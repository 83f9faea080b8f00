"""Training: optimizers, schedules, the per-epoch hook, divergence, backup and resume."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import make_arrays

from search.config import Config, preset
from search.data import Split
from search.errors import ConfigError
from search.models import build_model
from search.optim import Schedule
from search.training import one_hot, read_history, train

TINY = Config(width1=8, width2=8, width3=8, dense_units=16, epochs=2, batch_size=32, val_size=50)


def tiny_split(n=128, n_val=64):
    x, y, xv, yv = make_arrays(n, n_val)
    return Split(x, y, xv, yv)


def test_hook_sees_validation_accuracy_every_epoch():
    seen = []
    r = train(
        build_model(TINY),
        TINY,
        tiny_split(),
        on_epoch=lambda e, logs: seen.append((e, logs["val_accuracy"])) and False,
        verbose=False,
    )
    assert r.status == "complete" and r.epochs == 2
    assert [e for e, _ in seen] == [1, 2]
    assert all(0.0 <= a <= 1.0 for _, a in seen)
    assert r.history["val_accuracy"] == [a for _, a in seen]
    assert len(r.history["lr"]) == 2 and r.seconds > 0


def test_hook_returning_true_stops_the_run_as_pruned():
    c = TINY.replace(epochs=5)
    r = train(build_model(c), c, tiny_split(), on_epoch=lambda e, logs: e >= 2, verbose=False)
    assert (r.status, r.epochs) == ("pruned", 2)


def test_nan_loss_ends_as_diverged_not_a_crash():
    s = tiny_split()
    bad = s.x_train.astype("float32")
    bad[:] = np.nan
    c = TINY.replace(epochs=3)
    r = train(build_model(c), c, Split(bad, s.y_train, s.x_val, s.y_val), verbose=False)
    assert (r.status, r.epochs) == ("diverged", 1)


@pytest.mark.parametrize("optimizer", ["adamax", "rmsprop", "sgd", "adam", "adamw"])
def test_each_optimizer_learns_the_synthetic_task(optimizer):
    lr = {"sgd": 0.05, "rmsprop": 0.001}.get(optimizer, 0.003)
    c = TINY.replace(
        optimizer=optimizer,
        learning_rate=lr,
        momentum=0.9,
        weight_decay=1e-4,
        epochs=4,
        dropout1=0.0,
        dropout2=0.0,
        dropout3=0.0,
        dense_dropout=0.0,
        aug_strength=0.0,
    )
    r = train(build_model(c), c, tiny_split(256, 100), verbose=False)
    assert r.status == "complete"
    assert r.history["loss"][-1] < r.history["loss"][0]


def test_label_smoothing_ema_and_plateau_run():
    c = TINY.replace(label_smoothing=0.2, ema=0.9, epochs=2)
    assert train(build_model(c), c, tiny_split(), verbose=False).status == "complete"
    c = TINY.replace(plateau=True, early_stop=1, epochs=2)
    assert train(build_model(c), c, tiny_split(), verbose=False).status in (
        "complete",
        "early_stopped",
    )


def test_plateau_needs_a_constant_schedule():
    c = TINY.replace(plateau=True, schedule="cosine")
    with pytest.raises(ConfigError, match="plateau"):
        train(build_model(c), c, tiny_split(), verbose=False)


def _lr(kind, step, total=100, warmup=0.0):
    return float(keras.ops.convert_to_numpy(Schedule(kind, 1.0, total, warmup)(step)))


def test_schedules_have_their_shapes():
    assert [_lr("constant", s) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert [_lr("step", s) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )
    assert _lr("cosine", 0) == pytest.approx(1.0) and _lr("cosine", 50) == pytest.approx(0.5)
    assert _lr("cosine", 100) == pytest.approx(0.0, abs=1e-6)
    assert _lr("onecycle", 0, warmup=0.25) == pytest.approx(0.2)
    assert _lr("onecycle", 25, warmup=0.25) == pytest.approx(1.0)
    assert _lr("onecycle", 100, warmup=0.25) == pytest.approx(0.07)
    assert _lr("cosine", 0, warmup=0.1) == pytest.approx(0.1)  # warming up
    assert _lr("cosine", 10, warmup=0.1) == pytest.approx(1.0)


def test_schedule_stretches_with_the_run_length():
    assert _lr("cosine", 25, total=100) == pytest.approx(_lr("cosine", 75, total=300))


def test_backup_resumes_after_the_last_finished_epoch(tmp_path):
    """An interrupted run, run again with the same folder, trains only the missing epochs."""
    c = TINY.replace(epochs=4)
    split = tiny_split()
    stop_at_2 = lambda e, logs: (_ for _ in ()).throw(KeyboardInterrupt) if e == 2 else False
    with pytest.raises(KeyboardInterrupt):
        train(
            build_model(c),
            c,
            split,
            on_epoch=stop_at_2,
            verbose=False,
            backup_dir=tmp_path / "b",
            history_csv=tmp_path / "h.csv",
        )
    # epoch 2 finished (backed up, in the CSV) before the interrupt hit the hook
    seen = []
    r = train(
        build_model(c),
        c,
        split,
        on_epoch=lambda e, logs: seen.append(e) and False,
        verbose=False,
        backup_dir=tmp_path / "b",
        history_csv=tmp_path / "h.csv",
    )
    assert seen == [3, 4] and r.epochs == 4
    assert [row["epoch"] for row in read_history(tmp_path / "h.csv")] == [1, 2, 3, 4]


def _one_step(config, *, beta: float | None = None):
    """Every weight before one SGD step on the same batch, and its change over that step;
    ``beta`` sets the BatchNorm offsets first."""
    x, y, xv, yv = make_arrays(64, 10)
    model = build_model(config)
    if beta is not None:
        for w in model.trainable_weights:
            if w.path.endswith("beta"):
                w.assign(np.full(w.shape, beta))
    before = {w.path: np.array(w) for w in model.trainable_weights}
    train(model, config, Split(x, y, xv, yv), verbose=False)
    return before, {w.path: np.array(w) - before[w.path] for w in model.trainable_weights}


# one plain SGD step on a fixed batch: no momentum, augmentation or dropout
ONE_STEP = TINY.replace(
    optimizer="sgd",
    momentum=0.0,
    learning_rate=0.01,
    epochs=1,
    batch_size=64,
    aug_strength=0.0,
    dropout1=0.0,
    dropout2=0.0,
    dropout3=0.0,
    dense_dropout=0.0,
)


def test_bias_lr_scale_multiplies_the_step_of_batchnorm_offsets_only():
    c = ONE_STEP
    _, plain = _one_step(c)
    _, scaled = _one_step(c.replace(bias_lr_scale=8.0))
    beta = "s1_bn1/beta"
    assert np.allclose(scaled[beta], 8.0 * plain[beta], rtol=1e-3, atol=1e-7)
    assert np.abs(plain[beta]).max() > 0
    kernel = "s1_conv1/kernel"
    assert np.allclose(scaled[kernel], plain[kernel], rtol=1e-3, atol=1e-7)


def test_lookahead_runs_and_ends_on_its_slow_weights():
    c = TINY.replace(lookahead=True, epochs=2)
    r = train(build_model(c), c, tiny_split(), verbose=False)
    assert r.status == "complete"
    cb = __import__("search.training", fromlist=["Lookahead"]).Lookahead(total_steps=10, every=5)
    model = build_model(TINY)
    cb.set_model(model)
    cb.on_train_begin()
    w0 = np.array(model.weights[0])
    model.weights[0].assign(w0 + 1.0)
    cb.step = 4
    cb.on_train_batch_end(4)  # step 5 of 10: decay 0.95**5 * 0.125, a pull toward w0
    decay = 0.95**5 * 0.5**3
    assert np.allclose(np.array(model.weights[0]), w0 + (1 - decay), atol=1e-6)
    cb.on_train_end()
    assert np.allclose(np.array(model.weights[0]), cb.slow[0])


def test_with_lookahead_the_last_validation_measures_the_weights_that_are_kept():
    """8 steps, a pull every 5: the last 3 steps' fast weights are dropped at the end, so the
    last logged validation must already be of the slow copy (a trial's value is that figure)."""
    c = TINY.replace(lookahead=True, epochs=2)
    split = tiny_split(n=128)  # 4 steps of 32 per epoch
    model = build_model(c)
    r = train(model, c, split, verbose=False)
    logits = model.predict(split.x_val, verbose=0)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)(one_hot(split.y_val), logits)
    assert r.history["val_loss"][-1] == pytest.approx(float(loss), rel=1e-4)


FAST_TINY = Config(
    family="fast", width1=8, width2=8, width3=8, dense_units=0, dense_dropout=0.0,
    dropout1=0.0, dropout2=0.0, dropout3=0.0, optimizer="sgd", learning_rate=0.1,
    batch_size=32, epochs=3, val_size=50,
)  # fmt: skip


class _Record(keras.callbacks.Callback):
    """Calls ``read(model)`` at the end of every epoch."""

    def __init__(self, read):
        super().__init__()
        self.read, self.values = read, []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(self.read(self.model))


def test_the_whitening_bias_trains_for_its_epochs_then_stays():
    from search.training import compile_for_training, fit, steps_per_epoch

    def bias_by_epoch(config):
        split = tiny_split()
        model = build_model(config)
        record = _Record(lambda m: np.array(model.get_layer("whiten").bias))
        train_model = compile_for_training(model, config, steps_per_epoch(config, split))
        fit(train_model, config, split, verbose=False, callbacks=[record])
        return record.values

    free = bias_by_epoch(FAST_TINY)
    frozen = bias_by_epoch(FAST_TINY.replace(whiten_bias_epochs=1))
    assert np.array_equal(frozen[0], free[0]) and np.abs(frozen[0]).max() > 0
    assert np.array_equal(frozen[1], frozen[0]) and np.array_equal(frozen[2], frozen[0])
    assert not np.allclose(free[2], free[0])


def test_alternating_flip_is_told_each_epoch():
    from search.training import compile_for_training, fit, steps_per_epoch

    c = FAST_TINY.replace(alt_flip=True, aug_strength=0.5)
    split = tiny_split()
    train_model = compile_for_training(build_model(c), c, steps_per_epoch(c, split))
    layer = train_model.get_layer("augment").get_layer("flip")
    record = _Record(lambda m: int(layer.epoch.numpy()))
    fit(train_model, c, split, verbose=False, callbacks=[record])
    assert record.values == [0, 1, 2]


def _linear_model(seed=0):
    """A position-sensitive model: logits are a fixed linear map of every pixel."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])


def test_tta_averages_mirror_and_one_pixel_shifts_as_airbench_does():
    from search.evaluate import tta_logits

    model = _linear_model()
    x = np.random.default_rng(0).uniform(0, 1, (5, 4, 4, 1)).astype("float32")
    w, b = (np.array(v) for v in model.layers[-1].weights)

    def f(images):
        return images.reshape(len(images), -1) @ w + b

    def flip_mean(images):
        return (f(images) + f(images[:, :, ::-1])) / 2

    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    up_left, down_right = padded[:, :4, :4], padded[:, 2:, 2:]
    expected = 0.5 * flip_mean(x) + 0.25 * (flip_mean(up_left) + flip_mean(down_right))
    levels = tta_logits(model, x, level=2)
    assert list(levels) == ["plain", "flip", "flip_shift"]
    assert np.allclose(levels["plain"], f(x), atol=1e-5)
    assert np.allclose(levels["flip"], flip_mean(x), atol=1e-5)
    assert np.allclose(levels["flip_shift"], expected, atol=1e-5)
    assert not np.allclose(levels["flip_shift"], flip_mean(x), atol=1e-3)  # shifts matter
    assert list(tta_logits(model, x, level=1)) == ["plain", "flip"]
    assert list(tta_logits(model, x, level=0)) == ["plain"]
    # the batch a TTA prediction runs (its latency): the same images, 1, 2 or 6 per image
    from search.evaluate import tta_copies

    for level, weights in ((0, [1]), (1, [0.5] * 2), (2, [0.25] * 2 + [0.125] * 4)):
        parts = f(tta_copies(x, level)).reshape(len(weights), len(x), -1)
        mixed = np.tensordot(np.array(weights), parts, axes=1)
        assert np.allclose(mixed, list(tta_logits(model, x, level=level).values())[-1], atol=1e-5)


def test_weight_decay_reaches_batchnorm_offsets_only_with_decay_offsets():
    c = ONE_STEP
    # offsets start at 1: the decay of a zero offset would be invisible
    before, plain = _one_step(c, beta=1.0)
    _, kernels_only = _one_step(c.replace(weight_decay=0.5), beta=1.0)
    _, everything = _one_step(c.replace(weight_decay=0.5, decay_offsets=True), beta=1.0)
    beta, kernel = "s1_bn1/beta", "s1_conv1/kernel"
    decay = -0.01 * 0.5 * before[beta]
    assert np.allclose(kernels_only[beta], plain[beta], atol=1e-6)
    assert np.allclose(everything[beta], plain[beta] + decay, atol=1e-5)
    for d in (kernels_only, everything):
        expected = plain[kernel] - 0.01 * 0.5 * before[kernel]
        assert np.allclose(d[kernel], expected, atol=1e-5)


def _one_epoch_weights(config, split, steps_per_execution, callbacks=()):
    from search.training import compile_for_training, fit, steps_per_epoch

    keras.utils.set_random_seed(0)
    model = build_model(config)
    train_model = compile_for_training(
        model, config, steps_per_epoch(config, split), steps_per_execution=steps_per_execution
    )
    r = fit(train_model, config, split, verbose=False, callbacks=list(callbacks))
    return r, [np.array(w) for w in model.weights]


def test_several_steps_per_execution_train_the_same_weights_as_one():
    """Dropout, augmentation and a partial last call (5 batches of 32, 8 steps a call; 3 a
    call: 3 + 2): the same numbers as one step a call."""
    c = TINY.replace(epochs=1)
    split = tiny_split(n=160)
    _, one = _one_epoch_weights(c, split, 1)
    for n in (3, 8):
        _, many = _one_epoch_weights(c, split, n)
        assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(one, many)), n


def test_ctrl_c_stops_the_run_at_the_end_of_the_call_it_came_in():
    from search import STOP

    class PressCtrlC(keras.callbacks.Callback):
        calls = 0

        def on_train_batch_begin(self, batch, logs=None):
            PressCtrlC.calls += 1
            STOP.set()

    split = tiny_split(n=640)  # 20 batches: 3 calls of 8 steps
    try:
        with pytest.raises(KeyboardInterrupt):
            _one_epoch_weights(TINY.replace(epochs=3), split, 8, callbacks=[PressCtrlC()])
    finally:
        STOP.clear()
    assert PressCtrlC.calls == 1


def test_callbacks_that_act_every_step_refuse_several_steps_per_call(monkeypatch):
    from search import training

    monkeypatch.setattr(training, "STEPS_PER_EXECUTION", 8)
    assert training.default_steps_per_execution(TINY) == 8
    for c in (TINY.replace(lookahead=True), FAST_TINY.replace(whiten_bias_epochs=1)):
        assert training.default_steps_per_execution(c) == 1
        with pytest.raises(ValueError, match="steps_per_execution=1, not 4"):
            _one_epoch_weights(c, tiny_split(), 4)


def test_wsd_holds_the_peak_then_decays_linearly_to_zero_over_its_cooldown():
    s = Schedule("wsd", 1.0, 100, warmup=0.0, cooldown=0.2)
    lr = [float(keras.ops.convert_to_numpy(s(k))) for k in (0, 50, 80, 90, 100)]
    assert lr == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.0], abs=1e-6)
    moved = Schedule("wsd", 1.0, 100, cooldown=0.2, decay_start=30, decay_end=40)
    assert [
        float(keras.ops.convert_to_numpy(moved(k))) for k in (29, 30, 35, 40, 60)
    ] == pytest.approx(
        [1.0, 1.0, 0.5, 0.0, 0.0], abs=1e-6
    )  # a cooldown branch: the trunk before it is the same schedule


def test_cooldown_steps_are_a_fraction_of_the_steps_so_far_and_none_once_decaying():
    from search.training import cooldown_steps

    c = preset("fast").replace(schedule="wsd", cooldown=0.2, epochs=10)
    assert cooldown_steps(c, 2, 50) == 25  # 0.2 / 0.8 of 100 steps: a wsd run of 2.5 epochs
    assert cooldown_steps(c, 8, 50) == 0  # the trunk decays from epoch 8 on
    assert cooldown_steps(c.replace(schedule="onecycle"), 2, 50) == 0
