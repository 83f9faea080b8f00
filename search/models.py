"""Model families: ``build_model(config) -> keras.Model`` with raw pixels in and logits out.

A built model takes ``(N, 32, 32, 3)`` RGB pixels in 0-255 (uint8 or float); normalisation is a
layer inside it, so a saved ``model.keras`` stands on its own: it loads with
``keras.saving.load_model`` and classifies without this package. Only built-in layers are used.
Augmentation is not part of it: training wraps it (:func:`search.augment.with_augmentation`),
since Keras' random layers default to training mode when a model is called without
``training=``, which would make a plain ``model(x)`` random.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import keras
import numpy as np

from search.config import Config
from search.errors import ConfigError

# Per-channel mean and standard deviation of the CIFAR-10 training images, in 0-255 units.
MEAN = np.array([125.3, 123.0, 113.9])
STD = np.array([63.0, 62.1, 66.7])
WHITEN_KERNEL = 2  # the fast family's first conv: 2x2 patches, 2 * 3 * 2 * 2 = 24 channels
WHITEN_WIDTH = 2 * 3 * WHITEN_KERNEL**2


# PyTorch's default initialisation, U(+-1/sqrt(fan_in)): the scale airbench's learning rate and
# weight decay were tuned for. Before BatchNorm the scale changes nothing in the forward pass
# but sets the effective step size, lr / |w|^2, which He-normal (6x the squared norm) shrinks.
TORCH_INIT = keras.initializers.VarianceScaling(1 / 3, mode="fan_in", distribution="uniform")


def _conv(x, width: int, *, kernel: int = 3, strides: int = 1, name: str, init="he_normal"):
    return keras.layers.Conv2D(
        width,
        kernel,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=init,
        name=name,
    )(x)


def _bn(x, config: Config, *, name: str, scale: bool = True):
    return keras.layers.BatchNormalization(
        momentum=config.bn_momentum, epsilon=config.bn_eps, scale=scale, name=name
    )(x)


def _act(x, config: Config, *, name: str):
    return keras.layers.Activation(config.activation, name=name)(x)


def _dropout(x, rate: float, *, name: str):
    return keras.layers.Dropout(rate, name=name)(x) if rate > 0 else x


def _widths(config: Config) -> tuple[int, int, int]:
    return config.width1, config.width2, config.width3


def _dropouts(config: Config) -> tuple[float, float, float]:
    return config.dropout1, config.dropout2, config.dropout3


def seed_cnn(x, config: Config):
    """The historical model: per stage ``depth`` x (conv, BN, act), max-pool, dropout."""
    for s, (width, rate) in enumerate(zip(_widths(config), _dropouts(config)), start=1):
        for i in range(1, config.depth + 1):
            x = _conv(x, width, name=f"s{s}_conv{i}")
            x = _bn(x, config, name=f"s{s}_bn{i}")
            x = _act(x, config, name=f"s{s}_act{i}")
        x = keras.layers.MaxPooling2D(2, name=f"s{s}_pool")(x)
        x = _dropout(x, rate, name=f"s{s}_dropout")
    return keras.layers.Flatten(name="flatten")(x)


def resnet(x, config: Config):
    """ResNet-20 style: a conv stem, three stages of ``depth`` basic blocks, global pooling.

    Stages 2 and 3 halve the resolution in their first block (1x1 projection shortcut).
    ``width1..3 = 16/32/64, depth = 3`` is ResNet-20; ``64/128/256, depth = 1`` a wide,
    shallow, fast variant.
    """
    x = _conv(x, config.width1, name="stem_conv")
    x = _act(_bn(x, config, name="stem_bn"), config, name="stem_act")
    for s, (width, rate) in enumerate(zip(_widths(config), _dropouts(config)), start=1):
        for b in range(1, config.depth + 1):
            p = f"s{s}_b{b}"
            strides = 2 if (s > 1 and b == 1) else 1
            shortcut = x
            if strides != 1 or x.shape[-1] != width:
                shortcut = _conv(x, width, kernel=1, strides=strides, name=f"{p}_proj")
                shortcut = _bn(shortcut, config, name=f"{p}_proj_bn")
            y = _conv(x, width, strides=strides, name=f"{p}_conv1")
            y = _act(_bn(y, config, name=f"{p}_bn1"), config, name=f"{p}_act1")
            y = _conv(y, width, name=f"{p}_conv2")
            y = _bn(y, config, name=f"{p}_bn2")
            x = keras.layers.Add(name=f"{p}_add")([shortcut, y])
            x = _act(x, config, name=f"{p}_act2")
        x = _dropout(x, rate, name=f"s{s}_dropout")
    return keras.layers.GlobalAveragePooling2D(name="pool")(x)


def fast(x, config: Config):
    """The airbench-style conv-BN net: a 2x2 whitening conv, then three blocks of
    (conv, max-pool, BN, act) followed by ``depth - 1`` x (conv, BN, act), global max-pool.

    BatchNorm has no learned scale (as airbench); ``bn_momentum`` is typically 0.6.
    """
    x = keras.layers.Conv2D(
        WHITEN_WIDTH, WHITEN_KERNEL, padding="valid", kernel_initializer=TORCH_INIT, name="whiten"
    )(x)
    x = _act(x, config, name="whiten_act")
    for s, (width, rate) in enumerate(zip(_widths(config), _dropouts(config)), start=1):
        for i in range(1, config.depth + 1):
            x = _conv(x, width, name=f"s{s}_conv{i}", init=TORCH_INIT)
            if i == 1:
                x = keras.layers.MaxPooling2D(2, name=f"s{s}_pool")(x)
            x = _act(_bn(x, config, name=f"s{s}_bn{i}", scale=False), config, name=f"s{s}_act{i}")
        x = _dropout(x, rate, name=f"s{s}_dropout")
    return keras.layers.GlobalMaxPooling2D(name="pool")(x)


FAMILIES: dict[str, Callable] = {"seed_cnn": seed_cnn, "resnet": resnet, "fast": fast}


def build_model(config: Config, *, whiten_images: np.ndarray | None = None) -> keras.Model:
    """Build the config's model. ``whiten_images`` (uint8 training images) initialise the
    whitening layer when ``config.whiten``; without them it stays randomly initialised."""
    for name in ("whiten", "whiten_bias_epochs"):
        if getattr(config, name) and config.family != "fast":
            raise ConfigError(f"{name} applies to the fast family only, not {config.family}.")
    keras.utils.set_random_seed(config.seed)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Normalization(mean=MEAN, variance=STD**2, name="normalize")(inputs)
    x = FAMILIES[config.family](x, config)
    if config.dense_units:
        x = keras.layers.Dense(config.dense_units, name="dense")(x)
        x = _act(x, config, name="dense_act")
        x = _dropout(x, config.dense_dropout, name="dense_dropout")
    elif config.dense_dropout > 0:
        x = _dropout(x, config.dense_dropout, name="dense_dropout")
    fast = config.family == "fast"
    x = keras.layers.Dense(
        10,
        use_bias=not fast,
        kernel_initializer=TORCH_INIT if fast else "glorot_uniform",
        name="logits",
    )(x)
    if config.logit_scale != 1.0:
        x = keras.layers.Rescaling(config.logit_scale, name="logit_scale")(x)
    model = keras.Model(inputs, x, name=config.family)
    if config.whiten and whiten_images is not None:
        init_whitening(model.get_layer("whiten"), whiten_images)
    if config.dirac:
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (3, 3):
                init_dirac(layer)
    return model


def init_dirac(layer: keras.layers.Conv2D) -> None:
    """airbench's partial identity init: the first ``c_in`` filters of a 3x3 conv pass their
    input channel through unchanged (a 1 at the centre tap, 0 elsewhere); the rest keep their
    random initialisation. Plain weights, so the saved model needs nothing of this package."""
    kernel = np.array(layer.kernel.numpy())
    c_in, c_out = kernel.shape[2], kernel.shape[3]
    n = min(c_in, c_out)
    kernel[:, :, :, :n] = 0.0
    kernel[1, 1, np.arange(n), np.arange(n)] = 1.0
    layer.kernel.assign(kernel)


def init_whitening(layer: keras.layers.Conv2D, images: np.ndarray, eps: float = 5e-4) -> None:
    """Set a 2x2 conv to the whitening transform of the images' normalised patches (airbench):
    each eigenvector of the patch covariance, scaled by 1/sqrt(eigenvalue), and its negative.
    The kernel is then frozen; its bias still trains."""
    k, c = layer.kernel.shape[0], layer.kernel.shape[2]
    layer.kernel.assign(_whitening_kernel(np.ascontiguousarray(images[:5000]), k, c, eps))
    layer.kernel.trainable = False


_WHITENING: dict[tuple, np.ndarray] = {}  # a worker's trials whiten the same images


def _whitening_kernel(images: np.ndarray, k: int, c: int, eps: float) -> np.ndarray:
    """The kernel of :func:`init_whitening`, computed once per set of images (0.5-4 s of
    a trial's set-up otherwise, on 5,000 images here), known by a digest of their bytes."""
    key = (hashlib.blake2b(images.data, digest_size=16).digest(), images.shape, k, c, eps)
    if key not in _WHITENING:
        x = (np.asarray(images, np.float32) - MEAN) / STD
        patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
        patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k * k * c)  # (kh, kw, c)
        eigval, eigvec = np.linalg.eigh(np.cov(patches, rowvar=False))
        filters = (eigvec / np.sqrt(eigval + eps)).T[::-1]  # largest eigenvalue first
        kernel = np.concatenate([filters, -filters]).reshape(-1, k, k, c).transpose(1, 2, 3, 0)
        _WHITENING.clear()  # one set of images at a time: a worker has one split
        _WHITENING[key] = kernel.astype("float32")
    return _WHITENING[key]
