"""Pausing a run at a rung and resuming it (in a fresh model, as another process would) ends
exactly where a run straight through ends, without redoing an epoch."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_arrays

from search.config import preset
from search.data import Split
from search.models import build_model
from search.training import train


def tiny_split() -> Split:
    x, y, xv, yv = make_arrays(256, 64, seed=3)
    return Split(x, y, xv, yv)


CONFIGS = {
    # the fast family with everything that keeps state across epochs: lookahead, the
    # whitening bias freeze, alternating flips, random translation, one-cycle schedule
    "fast": preset("fast").replace(
        width1=8, width2=8, width3=8, batch_size=64, epochs=3, alt_flip=True,
        whiten_bias_epochs=1, aug_strength=1.0,
    ),
    # the seed family: dropout and cutout draw random numbers every step; Adamax slots
    "seed": preset("seed").replace(
        width1=8, width2=8, width3=8, dense_units=16, batch_size=64, epochs=3, cutout=0.5,
    ),
}  # fmt: skip


def run(config, split, tmp_path, pause_at=None):
    import keras

    keras.utils.set_random_seed(config.seed)
    model = build_model(config, whiten_images=split.x_train)
    if pause_at is None:
        r = train(model, config, split, verbose=False)
        return model, [r]
    backup = tmp_path / "ckpt"
    first = train(model, config, split, verbose=False, backup_dir=backup, pause_at=pause_at)
    keras.backend.clear_session()
    keras.utils.set_random_seed(12345)  # another process: other global random state
    fresh = build_model(config, whiten_images=split.x_train)
    second = train(fresh, config, split, verbose=False, backup_dir=backup, pause_at=None)
    return fresh, [first, second]


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_paused_and_resumed_equals_straight_through(family, tmp_path):
    config, split = CONFIGS[family], tiny_split()
    straight, (s,) = run(config, split, tmp_path / "a")
    resumed, (first, second) = run(config, split, tmp_path / "b", pause_at=2)
    assert first.status == "paused" and first.epochs == 2
    assert second.status == "complete"
    assert len(second.history["loss"]) == 1  # epoch 3 only: nothing redone
    np.testing.assert_allclose(
        second.history["val_accuracy"], s.history["val_accuracy"][2:], atol=1e-6
    )
    np.testing.assert_allclose(first.history["loss"], s.history["loss"][:2], rtol=1e-5)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_a_wsd_run_scored_on_a_cooldown_branch_at_its_pause_resumes_as_if_never_branched(
    family, tmp_path
):
    """The branch trains the model in memory after the pause's checkpoint was written: the
    resumed run ends exactly where one straight through (no branch) ends."""
    config = CONFIGS[family].replace(schedule="wsd", cooldown=0.3, warmup=0.1)
    split = tiny_split()
    straight, (s,) = run(config, split, tmp_path / "a")
    resumed, (first, second) = run(config, split, tmp_path / "b", pause_at=1)
    assert first.status == "paused" and first.cooldown_steps == 2  # 0.3 / 0.7 of 4 steps
    assert first.rung_value is not None and 0.0 <= first.rung_value <= 1.0
    assert second.status == "complete" and second.rung_value is None  # the end is no branch
    np.testing.assert_allclose(
        second.history["val_accuracy"], s.history["val_accuracy"][1:], atol=1e-6
    )
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_cooldown_branch_scores_the_decayed_weights_not_the_trunk(tmp_path):
    """The branch trains on after the trunk's last epoch: the weights it validates are not
    the trunk's (a comparison of accuracies alone can tie on 64 images, as it did in CI)."""
    import keras

    config = CONFIGS["fast"].replace(schedule="wsd", cooldown=0.5, learning_rate=0.5)
    split = tiny_split()
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, whiten_images=split.x_train)
    trunk = []

    def keep(epoch, logs):
        trunk[:] = [w.copy() for w in model.get_weights()]
        return False

    first = train(model, config, split, verbose=False, backup_dir=tmp_path, pause_at=1,
                  on_epoch=keep)  # fmt: skip
    assert first.status == "paused" and first.cooldown_steps == 4  # 0.5 / 0.5 of 4 steps
    assert 0.0 <= first.rung_value <= 1.0
    moved = [not np.allclose(a, b) for a, b in zip(trunk, model.get_weights())]
    assert any(moved)
