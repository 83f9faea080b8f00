"""The optimiser a config names, with its learning-rate schedule (constant, step, cosine,
one-cycle or warmup-stable-decay) and airbench's learning-rate scale for BatchNorm offsets."""

from __future__ import annotations

import math

import keras

from search.config import Config
from search.errors import ConfigError


@keras.saving.register_keras_serializable(package="search")
class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate by step: constant, step (x0.1 at 50% and 75%), cosine, one-cycle or wsd.

    ``warmup`` is the fraction of steps spent rising linearly to the peak (for one-cycle, where
    the peak is; it starts at 0.2x and ends at 0.07x the peak, as airbench's triangle). All
    shapes are fractions of ``total_steps``, so a longer run stretches the same schedule.

    ``wsd`` (warmup-stable-decay; Hägele et al. 2024): after the warmup the peak holds until
    step ``decay_start`` (default: the last ``cooldown`` fraction of the run) and then falls
    linearly to 0 at ``decay_end`` (default: the run's end). The trunk before the decay does
    not depend on where the decay starts, so a run paused at any epoch can be scored on a
    short cooldown branch (:func:`cooldown_branch` moves the decay) and resumed on the trunk.
    """

    def __init__(
        self,
        kind: str,
        peak: float,
        total_steps: int,
        warmup: float = 0.0,
        cooldown: float = 0.2,
        decay_start: int | None = None,
        decay_end: int | None = None,
    ):
        self.kind, self.peak, self.total_steps, self.warmup = kind, peak, total_steps, warmup
        self.cooldown = cooldown
        default_start = round((1.0 - cooldown) * total_steps)
        self.decay_start = default_start if decay_start is None else decay_start
        self.decay_end = total_steps if decay_end is None else decay_end

    def __call__(self, step):
        ops = keras.ops
        t = ops.cast(step, "float32") / float(max(self.total_steps, 1))
        w = float(self.warmup)
        if self.kind == "onecycle":
            w = max(w, 1e-6)
            up = 0.2 + 0.8 * t / w
            down = 1.0 - 0.93 * (t - w) / max(1.0 - w, 1e-6)
            return self.peak * ops.where(t < w, up, ops.maximum(down, 0.07))
        if self.kind == "cosine":
            p = ops.clip((t - w) / max(1.0 - w, 1e-6), 0.0, 1.0)
            shape = 0.5 * (1.0 + ops.cos(math.pi * p))
        elif self.kind == "step":
            shape = ops.where(t < 0.5, 1.0, ops.where(t < 0.75, 0.1, 0.01))
        elif self.kind == "wsd":
            a, b = float(self.decay_start), float(self.decay_end)
            s = ops.cast(step, "float32")
            shape = ops.clip((b - s) / max(b - a, 1.0), 0.0, 1.0)
        else:
            shape = ops.ones_like(t)
        if w > 0:
            shape = shape * ops.minimum(1.0, (t + 1.0 / max(self.total_steps, 1)) / w)
        return self.peak * shape

    def get_config(self) -> dict:
        return {
            "kind": self.kind,
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup": self.warmup,
            "cooldown": self.cooldown,
            "decay_start": self.decay_start,
            "decay_end": self.decay_end,
        }


def make_optimizer(config: Config, total_steps: int) -> keras.optimizers.Optimizer:
    if config.plateau and config.schedule != "constant":
        raise ConfigError("plateau (ReduceLROnPlateau) needs schedule = 'constant'.")
    lr = (
        config.learning_rate
        if config.plateau
        else Schedule(
            config.schedule, config.learning_rate, total_steps, config.warmup, config.cooldown
        )
    )
    common = dict(
        learning_rate=lr,
        weight_decay=config.weight_decay or None,
        use_ema=config.ema > 0,
        ema_momentum=config.ema or 0.99,
    )
    opt = {
        "adamax": lambda: keras.optimizers.Adamax(**common),
        "rmsprop": lambda: keras.optimizers.RMSprop(momentum=config.momentum, **common),
        "sgd": lambda: keras.optimizers.SGD(
            momentum=config.momentum, nesterov=config.nesterov, **common
        ),
        "adam": lambda: keras.optimizers.Adam(**common),
        "adamw": lambda: keras.optimizers.AdamW(**{**common, "weight_decay": config.weight_decay}),
    }[config.optimizer]()
    if config.weight_decay and not config.decay_offsets:
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    if config.bias_lr_scale != 1.0:
        _scale_offset_lr(opt, config.bias_lr_scale)
    return opt


def _scale_offset_lr(opt: keras.optimizers.Optimizer, factor: float) -> None:
    """Multiply the learning rate of BatchNorm offsets (``beta``) by ``factor``: airbench's
    bias scaler. Keras optimizers have one rate for all variables, so the per-variable step
    is wrapped; the optimizer itself is never saved with a model."""
    step = opt.update_step

    def update_step(gradient, variable, learning_rate):
        if variable.name.split(":")[0].endswith("beta"):  # a Keras or a backend variable
            learning_rate = learning_rate * factor
        return step(gradient, variable, learning_rate)

    opt.update_step = update_step
