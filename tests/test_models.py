"""Model families, parameter counts, augmentation, whitening and standalone saved models."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import run_script

from search.augment import augmentation, with_augmentation
from search.config import PRESETS, Config
from search.errors import ConfigError
from search.models import build_model, init_whitening

X = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)


@pytest.mark.parametrize(
    "name, params",
    [("seed", 405_354), ("resnet20", 274_042), ("fast", 570_296)],
)
def test_families_build_with_logits_out_and_known_sizes(name, params):
    model = build_model(PRESETS[name])
    assert model.count_params() == params
    assert model(X).shape == (8, 10)


def test_resnet_depth_and_width_are_configurable():
    r20 = PRESETS["resnet20"]
    deep = build_model(r20.replace(depth=5))  # ResNet-32
    wide = build_model(r20.replace(width1=48, width2=96, width3=192, depth=1))  # wide, shallow
    adds = lambda m: sum(isinstance(layer, keras.layers.Add) for layer in m.layers)
    assert adds(deep) == 15 and adds(wide) == 3
    assert 600_000 < wide.count_params() < 1_000_000


@pytest.mark.parametrize("activation", ["gelu", "leaky_relu", "elu", "relu"])
def test_activations(activation):
    model = build_model(Config(activation=activation))
    acts = {
        layer.get_config()["activation"]
        for layer in model.layers
        if isinstance(layer, keras.layers.Activation)
    }
    assert acts == {activation}


def test_dropout_rates_and_widths_come_from_the_config():
    model = build_model(Config(dropout1=0.1, dropout2=0.2, dropout3=0.0, width1=8))
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.1, 0.2, 0.5]  # stage 3 at 0 adds no layer; dense dropout stays
    assert model.get_layer("s1_conv1").filters == 8


def test_whiten_is_refused_outside_the_fast_family():
    with pytest.raises(ConfigError, match="whiten applies to the fast family only"):
        build_model(Config(whiten=True))
    with pytest.raises(ConfigError, match="whiten_bias_epochs applies to the fast family only"):
        build_model(Config(whiten_bias_epochs=3))


def test_strength_zero_is_the_identity():
    c = Config(aug_strength=0.0, translate=None, rotate=None, cutout=None)
    assert augmentation(c) is None
    model = build_model(c.replace(dropout1=0, dropout2=0, dropout3=0, dense_dropout=0))
    train_model = with_augmentation(model, c)
    # training-mode BatchNorm aside, nothing random happens between input and logits
    a = train_model(X, training=True)
    b = train_model(X, training=True)
    assert np.allclose(a, b)


def test_augmentation_acts_only_in_training():
    c = Config(aug_strength=1.0, translate=None, rotate=None, cutout=None)
    aug = augmentation(c)
    assert [layer.name for layer in aug.layers] == ["flip", "translate", "rotate", "cutout"]
    x = X.astype("float32")
    assert np.array_equal(aug(x, training=False), x)
    assert not np.allclose(aug(x, training=True), x)


def test_alternating_flip_shows_each_image_once_each_way_over_two_epochs():
    aug = augmentation(Config(aug_strength=1.0, alt_flip=True, translate=0.0))
    layer = aug.get_layer("flip")
    x = np.random.default_rng(2).integers(0, 256, (200, 32, 32, 3)).astype("float32")
    mirrored = x[:, :, ::-1]
    seen = []
    for epoch in (0, 1, 2):
        layer.epoch.assign(epoch)
        y = np.asarray(aug(x, training=True))
        flipped = np.array([np.array_equal(a, m) for a, m in zip(y, mirrored)])
        assert all(np.array_equal(a, b) for a, b, f in zip(y, x, flipped) if not f)
        seen.append(flipped)
    assert (seen[0] != seen[1]).all()  # each image once as it is, once mirrored
    assert (seen[0] == seen[2]).all()  # the same half again two epochs on
    assert 0.35 < seen[0].mean() < 0.65
    assert np.array_equal(aug(x, training=False), x)


def test_whitening_layer_whitens_patches():
    model = build_model(PRESETS["fast"], whiten_images=np.repeat(X, 20, axis=0))
    layer = model.get_layer("whiten")
    assert not layer.kernel.trainable and layer.bias.trainable
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (400, 32, 32, 3)).astype(np.uint8)
    init_whitening(layer, imgs)
    sub = keras.Model(model.input, model.get_layer("whiten").output)
    out = np.asarray(sub(imgs)).reshape(-1, 24)[:, :12]  # the 12 positive filters
    cov = np.cov(out - np.asarray(layer.bias)[:12], rowvar=False)
    assert np.allclose(cov, np.eye(12), atol=0.1)


def test_whitening_is_computed_once_per_set_of_images(monkeypatch):
    """A worker's trials whiten the same images: the second model reuses the kernel, other
    images get their own."""
    calls = []
    eigh = np.linalg.eigh
    monkeypatch.setattr(np.linalg, "eigh", lambda a: calls.append(1) or eigh(a))
    rng = np.random.default_rng(2)
    imgs, other = (rng.integers(0, 256, (300, 32, 32, 3)).astype(np.uint8) for _ in range(2))
    kernels = []
    for images in (imgs, imgs.copy(), other):
        layer = build_model(PRESETS["fast"], whiten_images=images).get_layer("whiten")
        kernels.append(np.asarray(layer.kernel))
    assert len(calls) == 2
    assert np.array_equal(kernels[0], kernels[1]) and not np.allclose(kernels[0], kernels[2])


def test_saved_model_loads_without_this_package(tmp_path):
    """model.keras holds built-in layers only: a fresh process with plain Keras classifies."""
    model = build_model(PRESETS["fast"], whiten_images=X)
    with_augmentation(model, PRESETS["fast"]).compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "want.npy", np.asarray(model(X, training=False)))
    code = (
        "import sys, numpy as np, keras; sys.modules['search'] = None; "
        f"m = keras.saving.load_model(r'{tmp_path / 'm.keras'}', safe_mode=True); "
        f"got = np.asarray(m(np.load(r'{tmp_path / 'x.npy'}'))); "
        f"print(np.abs(got - np.load(r'{tmp_path / 'want.npy'}')).max())"
    )
    r = run_script("-c", code)
    assert r.returncode == 0, r.stderr[-2000:]
    assert float(r.stdout.strip().splitlines()[-1]) < 1e-5


def test_translation_shifts_whole_pixels_without_blur():
    aug = augmentation(Config(aug_strength=1.0, flip=False, rotate=0.0, cutout=0.0))
    x = X.astype("float32")
    y = np.asarray(aug(x, training=True))
    assert not np.array_equal(y, x)
    assert np.isin(y, x).all()  # every output pixel is an input pixel: no interpolation


def test_dirac_init_makes_the_first_filters_the_identity():
    config = PRESETS["fast"].replace(width1=16, width2=32, width3=32, dirac=True, whiten=False)
    conv = build_model(config).get_layer("s2_conv1")  # 16 channels in, 32 out
    k = conv.kernel.numpy()
    identity = np.zeros((3, 3, 16, 16), np.float32)
    identity[1, 1, range(16), range(16)] = 1.0
    np.testing.assert_array_equal(k[:, :, :, :16], identity)
    assert np.abs(k[:, :, :, 16:]).min() > 0  # the other filters keep their random init
    plain = build_model(config.replace(dirac=False)).get_layer("s2_conv1").kernel.numpy()
    assert np.abs(plain[:, :, :, :16] - identity).max() > 0.1


def test_batchnorm_epsilon_comes_from_the_config():
    model = build_model(PRESETS["fast"].replace(bn_eps=1e-12, whiten=False))
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and {layer.epsilon for layer in bns} == {1e-12}
