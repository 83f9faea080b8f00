"""The frozen config: JSON round trip, validation, presets, augmentation knobs."""

from __future__ import annotations

import json

import pytest

from search.config import PRESETS, Config, preset
from search.errors import ConfigError


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_json(tmp_path, name):
    c = PRESETS[name]
    (tmp_path / "c.json").write_text(c.to_json())
    assert Config.from_json(tmp_path / "c.json") == c


def test_ints_for_float_fields_make_the_same_config():
    assert Config(weight_decay=0) == Config(weight_decay=0.0)
    assert isinstance(Config(weight_decay=0).weight_decay, float)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(activation="swish"), r"activation 'swish' is unknown; choose one of gelu"),
        (dict(optimizer="lion"), r"optimizer 'lion' is unknown"),
        (dict(family="vit"), r"family 'vit' is unknown"),
        (dict(dropout1=1.5), r"dropout1 = 1.5 is out of range"),
        (dict(batch_size="64"), r"batch_size must be int, got '64'"),
        (dict(learning_rate=float("nan")), r"learning_rate must be float"),
        (dict(flip="yes"), r"flip must be bool or null"),
        (dict(train_size=46000), r"train_size = 46000 is out of range"),
        (dict(whiten_bias_epochs=-1), r"whiten_bias_epochs = -1 is out of range"),
        (dict(alt_flip="yes"), r"alt_flip must be bool"),
    ],
)
def test_bad_values_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config().replace(**changes)


def test_unknown_keys_are_listed(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"learning_rat": 0.1}))
    with pytest.raises(ConfigError, match=r"c.json: unknown key\(s\) learning_rat"):
        Config.from_json(tmp_path / "c.json")


def test_bad_json_and_missing_file(tmp_path):
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.from_json(tmp_path / "c.json")
    with pytest.raises(ConfigError, match="does not exist"):
        Config.from_json(tmp_path / "none.json")


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'sed'"):
        preset("sed")


def test_strength_scales_each_transform_and_overrides_win():
    a = Config(aug_strength=1.0, translate=None, rotate=None, cutout=None).aug
    assert a == {"flip": True, "translate": 0.125, "rotate": 10.0, "cutout": 0.5}
    half = Config(aug_strength=0.5, translate=None, rotate=None, cutout=None).aug
    assert half == {"flip": True, "translate": 0.0625, "rotate": 5.0, "cutout": 0.25}
    off = Config(aug_strength=0.0, translate=None, rotate=None, cutout=None).aug
    assert off == {"flip": False, "translate": 0.0, "rotate": 0.0, "cutout": 0.0}
    mixed = Config(aug_strength=0.0, flip=True, translate=0.1, rotate=None, cutout=None).aug
    assert mixed == {"flip": True, "translate": 0.1, "rotate": 0.0, "cutout": 0.0}


def test_historical_preset_is_the_hand_tuned_model():
    c = preset("historical")
    assert (c.family, c.activation, c.optimizer, c.learning_rate) == (
        "seed_cnn",
        "gelu",
        "adamax",
        0.0035,
    )
    assert (c.width1, c.width2, c.width3) == (32, 64, 64)
    assert (c.dropout1, c.dropout2, c.dropout3, c.dense_units, c.dense_dropout) == (
        0.25,
        0.3,
        0.4,
        256,
        0.5,
    )
    assert c.aug["flip"] and c.aug["translate"] == pytest.approx(0.1)  # shifts and flips only
    assert c.aug["rotate"] == 0 and c.aug["cutout"] == 0
    assert (c.batch_size, c.schedule) == (32, "constant")  # Keras' fit default, no decay


def test_seed_preset_is_the_historical_model_with_lighter_dropout():
    seed, historical = preset("seed"), preset("historical")
    before = historical.to_dict()
    changed = {k for k, v in seed.to_dict().items() if before[k] != v}
    assert changed == {"dropout1", "dropout2", "dropout3", "dense_dropout"}
    assert (seed.dropout1, seed.dropout2, seed.dropout3, seed.dense_dropout) == (0.1, 0.1, 0.1, 0.2)
