"""Augmentation as a named stack of Keras preprocessing layers, inside the training graph.

:func:`with_augmentation` puts the stack in front of a model for ``fit``; the layers act only
when called with ``training=True``, and the saved model is the inner one, without them.
Backend-agnostic: Keras layers only, no backend calls.
"""

from __future__ import annotations

import keras

from search.config import Config

# Cutout fills its patch with the mean pixel, which the normalisation layer maps to about 0.
MEAN_PIXEL = 120.0
CUTOUT_AREA = (0.05, 0.25)  # each side of the patch is sqrt(u) of the image, u in this range


class AlternatingFlip(keras.layers.Layer):
    """airbench's alternating flip: over any two consecutive epochs each image is seen once
    as it is and once mirrored, where random flips repeat or skip a view half the time.

    Which half of the images is flipped on even epochs is fixed by the parity of each image's
    pixel sum (flipping leaves it unchanged), so no image index is needed; :attr:`epoch` is
    set by the training loop (:class:`search.callbacks.SetEpoch`).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.epoch = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="epoch"
        )

    def call(self, x, training=None):
        if not training:
            return x
        ops = keras.ops
        pixel_sum = ops.cast(ops.sum(ops.cast(x, "float32"), axis=(1, 2, 3)), "int32")
        flip = ops.equal(ops.mod(pixel_sum + self.epoch, 2), 1)
        return ops.where(ops.reshape(flip, (-1, 1, 1, 1)), ops.flip(x, axis=2), x)


def augmentation(config: Config) -> keras.Sequential | None:
    """The training-time transforms of ``config.aug``; None when there are none."""
    a = config.aug
    layers: list[keras.layers.Layer] = []
    seed = config.seed
    if a["flip"] and config.alt_flip:
        layers.append(AlternatingFlip(name="flip"))
    elif a["flip"]:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed, name="flip"))
    if a["translate"] > 0:
        t = float(a["translate"])
        layers.append(
            keras.layers.RandomTranslation(
                t,
                t,
                fill_mode="reflect",
                interpolation="nearest",  # whole-pixel shifts, as crops: no blur
                seed=seed + 1,
                name="translate",
            )
        )
    if a["rotate"] > 0:
        layers.append(
            keras.layers.RandomRotation(
                float(a["rotate"]) / 360.0, fill_mode="reflect", seed=seed + 2, name="rotate"
            )
        )
    if a["cutout"] > 0:
        p = float(a["cutout"])
        layers.append(
            keras.layers.RandomErasing(
                factor=(p, p),
                scale=CUTOUT_AREA,
                fill_value=MEAN_PIXEL,
                value_range=(0, 255),
                seed=seed + 3,
                name="cutout",
            )
        )
    if not layers:
        return None
    return keras.Sequential(layers, name="augment")


def with_augmentation(model: keras.Model, config: Config) -> keras.Model:
    """A training model: ``model`` behind the config's augmentation stack, if any.

    Always a new outer model, so compiling it leaves ``model`` itself free of an optimizer and
    its saved file free of this package's classes (the learning-rate schedule).
    """
    aug = augmentation(config)
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = inputs if aug is None else aug(inputs)
    return keras.Model(inputs, model(x), name=f"{model.name}_training")
