"""One frozen configuration: the whole recipe of a run, from data split to evaluation.

A config round-trips through JSON. A search samples a point of a space and applies it to a
base config with :func:`dataclasses.replace`; the model builder and the trainer receive the
config, never an ``optuna.Trial``. Every default is visible here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.errors import ConfigError

FAMILIES = ("seed_cnn", "resnet", "fast")
ACTIVATIONS = ("gelu", "leaky_relu", "elu", "relu")
OPTIMIZERS = ("adamax", "rmsprop", "sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "wsd")


@dataclass(frozen=True)
class Config:
    # --- data: which images a run trains and validates on -----------------------------------
    train_size: int | None = None  # None: every training image not held out for validation
    val_size: int = 5000  # 0: train on all 50,000 training images (the retrain)
    split_seed: int = 0  # fixes the validation images, the same for every trial
    seed: int = 0  # weights, shuffling and augmentation

    # --- model ----------------------------------------------------------------------------
    family: str = "seed_cnn"  # seed_cnn | resnet | fast
    width1: int = 32  # channels of stage 1, 2, 3
    width2: int = 64
    width3: int = 64
    depth: int = 2  # convs per stage (seed_cnn, fast) or residual blocks per stage (resnet)
    activation: str = "gelu"
    dropout1: float = 0.25  # after stage 1, 2, 3
    dropout2: float = 0.3
    dropout3: float = 0.4
    dense_units: int = 256  # seed_cnn's hidden dense layer; 0: none
    dense_dropout: float = 0.5
    bn_momentum: float = 0.9  # Keras' 0.99 leaves short trials' moving statistics unset
    bn_eps: float = 1e-3  # BatchNorm epsilon: Keras' default; airbench uses 1e-12
    whiten: bool = False  # first conv initialised from the patch whitening of the data (fast)
    dirac: bool = False  # 3x3 convs start as the identity on their first c_in filters (airbench)
    logit_scale: float = 1.0  # multiply the logits (airbench uses 1/9)

    # --- augmentation: one strength knob, each transform overridable ----------------------
    aug_strength: float = 0.8  # 0: off; scales translate, rotate and cutout; flip when > 0
    flip: bool | None = None  # None: on when aug_strength > 0
    alt_flip: bool = False  # airbench: a fixed half flipped on even epochs, the other half on odd
    translate: float | None = None  # fraction of the image; None: 0.125 * strength
    rotate: float | None = 0.0  # degrees; None: 10 * strength
    cutout: float | None = 0.0  # probability of erasing a patch; None: 0.5 * strength

    # --- optimisation ---------------------------------------------------------------------
    optimizer: str = "adamax"
    learning_rate: float = 0.0035
    momentum: float = 0.9  # sgd and rmsprop
    nesterov: bool = True  # sgd
    weight_decay: float = 0.0  # decoupled, as Keras applies it
    decay_offsets: bool = False  # decay BatchNorm offsets and biases too (airbench); else kernels
    label_smoothing: float = 0.0
    batch_size: int = 32  # Keras' fit default; the seed CNN learns far faster per epoch at 32
    epochs: int = 10
    schedule: str = "constant"  # constant | step | cosine | onecycle | wsd
    warmup: float = 0.0  # fraction of the steps spent warming up (onecycle: where the peak is)
    # wsd (warmup-stable-decay): the fraction of a run's steps at its end spent decaying the
    # learning rate linearly to 0; a promote study scores each rung on a cooldown branch of
    # the same fraction (search.training.cooldown_steps)
    cooldown: float = 0.2
    plateau: bool = False  # ReduceLROnPlateau on validation loss
    early_stop: int = 0  # patience in epochs on validation accuracy; 0: off
    ema: float = 0.0  # momentum of an exponential moving average of the weights; 0: off
    lookahead: bool = False  # airbench's lookahead: every 5 steps, pull weights to a slow copy
    bias_lr_scale: float = 1.0  # learning-rate multiplier of BatchNorm offsets (airbench: 64)
    whiten_bias_epochs: int = 0  # fast family: freeze the whitening bias after N epochs; 0: never

    # --- evaluation -----------------------------------------------------------------------
    tta_flip: bool = False  # average the logits of the image and its mirror at evaluation
    tta_shift: bool = False  # also average copies shifted 1 pixel each way (airbench level 2)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check_type(f.name, value, _field_types()[f.name])
            if field_kind(f.name) is float and isinstance(value, int):
                object.__setattr__(self, f.name, float(value))  # 0 and 0.0 are one config
        _check_choice("family", self.family, FAMILIES)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_range("val_size", self.val_size, 0, 49_990)
        if self.train_size is not None:
            _check_range("train_size", self.train_size, 10, 50_000 - self.val_size)
        for name in ("width1", "width2", "width3", "depth", "batch_size", "epochs"):
            _check_range(name, getattr(self, name), 1, 100_000)
        _check_range("dense_units", self.dense_units, 0, 100_000)
        for name in ("dropout1", "dropout2", "dropout3", "dense_dropout", "label_smoothing"):
            _check_range(name, getattr(self, name), 0.0, 0.95)
        _check_range("cooldown", self.cooldown, 0.01, 0.9)
        for name in ("aug_strength", "warmup", "momentum", "bn_momentum"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        _check_range("ema", self.ema, 0.0, 0.99999)
        _check_range("bn_eps", self.bn_eps, 1e-15, 1.0)
        _check_range("learning_rate", self.learning_rate, 1e-8, 100.0)
        _check_range("weight_decay", self.weight_decay, 0.0, 1.0)
        _check_range("logit_scale", self.logit_scale, 1e-3, 1e3)
        _check_range("bias_lr_scale", self.bias_lr_scale, 1e-2, 1e3)
        _check_range("early_stop", self.early_stop, 0, 10_000)
        _check_range("whiten_bias_epochs", self.whiten_bias_epochs, 0, 10_000)
        if self.translate is not None:
            _check_range("translate", self.translate, 0.0, 0.5)
        if self.rotate is not None:
            _check_range("rotate", self.rotate, 0.0, 180.0)
        if self.cutout is not None:
            _check_range("cutout", self.cutout, 0.0, 1.0)

    # --- augmentation as applied ----------------------------------------------------------
    @property
    def aug(self) -> dict[str, float | bool]:
        """The transforms actually applied: explicit overrides win over the strength."""
        s = self.aug_strength
        return {
            "flip": (s > 0) if self.flip is None else self.flip,
            "translate": 0.125 * s if self.translate is None else self.translate,
            "rotate": 10.0 * s if self.rotate is None else self.rotate,
            "cutout": 0.5 * s if self.cutout is None else self.cutout,
        }

    # --- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str | None = None) -> Config:
        """A config from its keys; errors name ``where`` the keys came from, if given."""
        at = f"{where}: " if where else ""
        unknown = sorted(set(data) - set(field_names()))
        if unknown:
            raise ConfigError(
                f"{at}unknown key(s) {', '.join(unknown)}. Known keys: {', '.join(field_names())}."
            )
        try:
            return cls(**data)
        except ConfigError as e:
            raise ConfigError(f"{at}{e}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> Config:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist.") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {path} is not valid JSON: {e}.") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a JSON object of config keys.")
        return cls.from_dict(data, where=str(path))

    def replace(self, **changes: Any) -> Config:
        """``dataclasses.replace`` with the same error messages as ``from_dict``."""
        return Config.from_dict({**self.to_dict(), **changes})


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Config))


_TYPES: dict[str, Any] = {}


def _field_types() -> dict[str, Any]:
    if not _TYPES:
        _TYPES.update(typing.get_type_hints(Config))
    return _TYPES


def field_kind(name: str) -> type:
    """The scalar type of a field: bool, int, float or str (ignoring ``| None``)."""
    tp = _field_types()[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return args[0]


def _check_type(name: str, value: Any, tp: Any) -> None:
    allowed = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
    if value is None and type(None) in allowed:
        return
    for t in allowed:
        if t is bool and isinstance(value, bool):
            return
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                return
        if t is str and isinstance(value, str):
            return
    names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    raise ConfigError(f"{name} must be {names}, got {value!r}.")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} {value!r} is unknown; choose one of {', '.join(choices)}.")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name} = {value!r} is out of range [{low}, {high}].")


# The historical hand-tuned model; the seed CNN as we start it (the historical model with
# lighter dropout); the residual and fast families' starting points. What each scores is in
# the README's table and results/reference/, not here.
PRESETS: dict[str, Config] = {
    "historical": Config(),
    "seed": Config(dropout1=0.1, dropout2=0.1, dropout3=0.1, dense_dropout=0.2),
    "resnet20": Config(
        family="resnet",
        width1=16,
        width2=32,
        width3=64,
        depth=3,
        dropout1=0.0,
        dropout2=0.0,
        dropout3=0.0,
        dense_units=0,
        dense_dropout=0.0,
        activation="relu",
        optimizer="sgd",
        learning_rate=0.1,
        weight_decay=5e-4,
        schedule="cosine",
        warmup=0.05,
        aug_strength=1.0,
        rotate=0.0,
        cutout=0.0,
        batch_size=128,
        epochs=30,
    ),
    "fast": Config(
        family="fast",
        width1=64,
        width2=128,
        width3=128,
        depth=2,
        dropout1=0.0,
        dropout2=0.0,
        dropout3=0.0,
        dense_units=0,
        dense_dropout=0.0,
        bn_momentum=0.6,
        whiten=True,
        dirac=True,  # see the ablation in the README's table
        logit_scale=1 / 9,
        activation="gelu",
        # airbench's SGD in Keras terms: its lr 11.5 per 1024 examples on a summed loss is
        # 1.5 on a mean loss at batch 1024. Its weight decay (0.002 per step, coupled) passes
        # through the momentum, 1 / (1 - 0.85) times over: 0.0133 per step at the peak, which
        # Keras' decoupled decay (lr x weight_decay per step) gives with 0.0089.
        optimizer="sgd",
        learning_rate=1.5,
        momentum=0.85,
        nesterov=True,
        weight_decay=0.0089,
        decay_offsets=True,  # offsets and biases decay too, as in airbench
        label_smoothing=0.2,
        batch_size=1024,
        epochs=10,
        schedule="onecycle",
        warmup=0.23,
        lookahead=True,
        bias_lr_scale=64.0,
        aug_strength=0.5,
        rotate=0.0,
        cutout=0.0,
        tta_flip=True,
        tta_shift=True,
    ),
}


def preset(name: str) -> Config:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}.") from None
