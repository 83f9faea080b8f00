"""Search spaces as data: validation messages, Optuna distributions, conditions."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from search.config import preset
from search.errors import SpaceError
from search.space import load_space, parse_space

SPACES = Path(__file__).resolve().parents[1] / "spaces"
TINY = Path(__file__).parent / "spaces" / "tiny.toml"

GOOD = """
base = "seed"
[params.optimizer]
type = "categorical"
choices = ["adamax", "sgd"]
[params.learning_rate]
type = "float"
low = 1e-4
high = 0.1
log = true
[params.momentum]
type = "float"
low = 0.5
high = 0.95
when = { optimizer = ["sgd"] }
[params.depth]
type = "int"
low = 1
high = 3
[params.whiten]
type = "bool"
"""


def parse(text: str):
    return parse_space(text, Path("my.toml"))


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[params.lr]\ntype = "float"\nlow = 0.1\nhigh = 1.0',
            r"my.toml: parameter 'lr' is not a config key",
        ),
        (
            '[params.learning_rate]\ntype = "float"\nlow = 0.1\nhigh = 1.0\nlgo = true',
            r"my.toml: parameter 'learning_rate': unknown key\(s\) lgo",
        ),
        (
            'colour = "red"\n[params.dropout1]\ntype = "float"\nlow = 0\nhigh = 0.5',
            r"my.toml: unknown top-level key\(s\) colour",
        ),
        (
            '[params.dropout1]\ntype = "float"\nlow = 0.5\nhigh = 0.1',
            r"my.toml: parameter 'dropout1': low 0.5 is above high 0.1",
        ),
        (
            '[params.activation]\ntype = "categorical"\nchoices = []',
            r"my.toml: parameter 'activation': choices must be a non-empty list",
        ),
        (
            '[params.activation]\ntype = "categorical"\nchoices = ["gelu", "swish"]',
            r"my.toml: parameter 'activation': choice 'swish': activation 'swish' is unknown",
        ),
        (
            '[params.optimizer]\ntype = "categorical"\nchoices = ["sgd", "lion"]',
            r"my.toml: parameter 'optimizer': choice 'lion': optimizer 'lion' is unknown",
        ),
        (
            '[params.momentum]\ntype = "float"\nlow = 0.5\nhigh = 0.9\nwhen = { optimizer = ["sgd"] }',
            r"my.toml: parameter 'momentum': when names 'optimizer', which is not a parameter declared above",
        ),
        (
            '[params.optimizer]\ntype = "categorical"\nchoices = ["sgd"]\n[params.momentum]\ntype = "float"\nlow = 0.5\nhigh = 0.9\nwhen = { optimizer = ["adam"] }',
            r"parameter 'momentum': when optimizer = 'adam' is a value optimizer never takes",
        ),
        (
            '[params.dropout1]\ntype = "int"\nlow = 0\nhigh = 1',
            r"parameter 'dropout1' is a float config key, not int",
        ),
        (
            '[params.dropout1]\ntype = "float"\nlow = 0\nhigh = 1.5',
            r"parameter 'dropout1': high: dropout1 = 1.5 is out of range",
        ),
        (
            '[params.learning_rate]\ntype = "float"\nlow = 0\nhigh = 0.1\nlog = true',
            r"parameter 'learning_rate': log scale needs low > 0",
        ),
        ('[params.dropout1]\ntype = "normal"', r"parameter 'dropout1': type 'normal' is unknown"),
        (
            '[params.dropout1]\ntype = "float"\nhigh = 0.5',
            r"parameter 'dropout1': a float parameter needs low and high",
        ),
        (
            'base = "sed"\n[params.dropout1]\ntype = "float"\nlow = 0\nhigh = 0.5',
            r"my.toml: base: unknown preset 'sed'",
        ),
        (
            '[fixed]\nwidht1 = 3\n[params.dropout1]\ntype = "float"\nlow = 0\nhigh = 0.5',
            r"my.toml \[fixed\]: unknown key\(s\) widht1",
        ),
        ('base = "seed"', r"my.toml: no \[params.NAME\] tables"),
        ('[params.dropout1\ntype = "float"', r"my.toml: not valid TOML"),
    ],
)
def test_bad_spaces_fail_naming_file_parameter_and_problem(text, message):
    with pytest.raises(SpaceError, match=message):
        parse(text)


def test_missing_space_file(tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "none.toml")


def test_space_round_trips_to_optuna_distributions():
    space = parse(GOOD)
    d = space.distributions()
    assert d["optimizer"] == optuna.distributions.CategoricalDistribution(("adamax", "sgd"))
    assert d["learning_rate"] == optuna.distributions.FloatDistribution(1e-4, 0.1, log=True)
    assert d["depth"] == optuna.distributions.IntDistribution(1, 3)
    assert d["whiten"] == optuna.distributions.CategoricalDistribution((False, True))
    # a stored trial made from these distributions is read back by suggest() unchanged
    params = {
        "optimizer": "sgd",
        "learning_rate": 0.01,
        "momentum": 0.7,
        "depth": 2,
        "whiten": False,
    }
    assert space.suggest(optuna.trial.FixedTrial(params)) == params
    assert space.apply(params).momentum == 0.7 and space.apply(params).depth == 2


def test_conditional_parameter_is_sampled_only_when_its_condition_holds():
    space = parse(GOOD)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        t = study.ask()
        p = space.suggest(t)
        study.tell(t, 0.0)
        assert ("momentum" in p) == (p["optimizer"] == "sgd")
        assert set(p) <= set(space.distributions())


@pytest.mark.parametrize("name", ["seed", "default", "fast", "seed-plus", "fast-width"])
def test_shipped_spaces_load(name):
    space = load_space(SPACES / f"{name}.toml")
    assert space.params and space.text
    assert set(space.base_point()) <= {p.name for p in space.params}


def test_seed_space_starts_from_the_historical_model():
    space = load_space(SPACES / "seed.toml")
    assert space.apply(space.base_point()) == preset("historical")
    names = {p.name for p in space.params}
    assert {"activation", "optimizer", "learning_rate", "aug_strength"} <= names
    assert {"dropout1", "dropout2", "dropout3"} <= names


@pytest.mark.parametrize("name", ["fast", "fast-width"])
def test_every_fast_space_config_is_within_budget(name):
    """The fast spaces' corners: the largest config stays under 1M parameters and 20 ms."""
    from search import budget
    from search.models import build_model

    space = load_space(SPACES / f"{name}.toml")
    p = {q.name: q for q in space.params}
    size = ("width1", "width2", "width3", "depth")
    largest = space.apply({k: p[k].high for k in size if k in p})
    m = budget.measure(build_model(largest), warmup=5, runs=30)
    assert m.params == 937_528 and m.latency_p50_ms < 20  # 96/160/160 at depth 2
    if name == "fast-width":  # the preset, with only its widths searched
        assert space.apply(space.base_point()) == preset("fast")
        assert {q.name for q in space.params} == {"width1", "width2", "width3"}


PER_OPTIMIZER = """
base = "seed"
[params.optimizer]
type = "categorical"
choices = ["adamax", "rmsprop", "sgd"]
[params.sgd_lr]
key = "learning_rate"
type = "float"
low = 0.1
high = 2.0
log = true
when = { optimizer = ["sgd"] }
[params.adaptive_lr]
key = "learning_rate"
type = "float"
low = 1e-4
high = 1e-2
log = true
when = { optimizer = OTHERS }
"""


def test_a_config_key_can_have_a_range_per_optimizer():
    space = parse_space(PER_OPTIMIZER.replace("OTHERS", '["adamax", "rmsprop"]'), Path("x.toml"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {}
    for _ in range(30):
        point = space.suggest(study.ask())
        config = space.apply(point)
        assert ("sgd_lr" in point) == (point["optimizer"] == "sgd") != ("adaptive_lr" in point)
        lr = config.learning_rate
        seen.setdefault(point["optimizer"], []).append(lr)
        assert (0.1 <= lr <= 2.0) if point["optimizer"] == "sgd" else (1e-4 <= lr <= 1e-2)
    assert set(seen) == {"adamax", "rmsprop", "sgd"}
    assert space.base_point() == {"optimizer": "adamax", "adaptive_lr": 0.0035}


@pytest.mark.parametrize(
    "others, extra, message",
    [
        ('["adamax", "sgd"]', "", "all set config key 'learning_rate'; give each a when"),
        ('["adamax", "rmsprop"]', '[params.extra]\nkey = "nope"\ntype = "float"\nlow = 0\nhigh = 1',
         "parameter 'extra': key 'nope' is not a config key"),
    ],
)  # fmt: skip
def test_shared_or_unknown_config_keys_are_refused_by_name(others, extra, message):
    with pytest.raises(SpaceError, match=message):
        parse_space(PER_OPTIMIZER.replace("OTHERS", others) + extra, Path("x.toml"))
