"""The KerasTuner engine on the same spaces: parity with Optuna, budgets, conditions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from search.cli import main
from search.kt import active_values, hyperparameters, tuner_seed
from search.report import BASE_COLUMNS
from search.settings import Settings, create_or_resume, load
from search.space import load_space, parse_space
from search.storage import study_dir
from search.worker import run_worker

TINY_SPACE = Path(__file__).parent / "spaces" / "tiny.toml"


def _first_values(seed: int, n: int = 4) -> list[dict]:
    import keras_tuner as kt

    oracle = kt.oracles.RandomSearchOracle(
        objective=kt.Objective("val_accuracy", "max"),
        max_trials=n,
        hyperparameters=hyperparameters(load_space(TINY_SPACE)),
        seed=tuner_seed(seed),
    )
    return [oracle._random_values() for _ in range(n)]


def test_kerastuner_seeds_are_reproducible_and_independent():
    # KerasTuner reads seed 0 as "pick one at random", and seeds 1 and 2 replay each other's
    # values shifted by one; study seeds 0, 1, 2 must give three different, repeatable streams.
    runs = {s: _first_values(s) for s in (0, 1, 2)}
    assert _first_values(0) == runs[0]
    floats = {
        s: {v for d in r for v in d.values() if isinstance(v, float)} for s, r in runs.items()
    }
    assert not floats[0] & floats[1] and not floats[1] & floats[2] and not floats[0] & floats[2]


def start(name, data, *extra):
    return main(
        [
            "start",
            "--study",
            name,
            "--space",
            str(TINY_SPACE),
            "--trials",
            "3",
            "--epochs",
            "2",
            "--train-size",
            "200",
            "--val-size",
            "100",
            "--data",
            str(data),
            "--pruner",  # the trials as the engines' tables count them: none paused
            "hyperband",
            *extra,
        ]
    )


def test_space_compiles_to_predeclared_hyperparameters_with_conditions():
    space = load_space(TINY_SPACE)
    hp = hyperparameters(space)
    assert [h.name for h in hp.space] == [p.name for p in space.params]
    lr = next(h for h in hp.space if h.name == "learning_rate")
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-4, 0.1, "log")
    hp.values["optimizer"] = "adamax"
    assert "momentum" not in active_values(space, hp)
    hp.values.update(optimizer="sgd", momentum=0.7)  # as KerasTuner's oracle sets them
    assert active_values(space, hp)["momentum"] == 0.7


def test_int_and_bool_parameters_compile():
    space = parse_space(
        'base = "fast"\n[params.depth]\ntype = "int"\nlow = 1\nhigh = 3\n'
        '[params.whiten]\ntype = "bool"\n',
        Path("s.toml"),
    )
    hp = hyperparameters(space)
    assert hp.get("depth") in (1, 2, 3) and hp.get("whiten") in (False, True)


# every engine's trials.csv: the outcome columns, then one column per parameter of the space
COLUMNS = [*BASE_COLUMNS, *(f"param_{p.name}" for p in load_space(TINY_SPACE).params)]


@pytest.mark.parametrize(
    "engine",
    ["optuna", "kerastuner-hyperband", "kerastuner-bayesian"],  # random: the retrain test
)
def test_each_engine_writes_the_same_trials_csv_columns(tiny_data, engine):
    name, _, tuner = engine.partition("-")
    extra = ["--engine", "kerastuner", "--tuner", tuner] if tuner else []
    assert start(engine, tiny_data, *extra) == 0
    got = pd.read_csv(study_dir(engine) / "trials.csv")
    assert list(got.columns) == COLUMNS
    assert len(got[got.state.isin(["COMPLETE", "PRUNED"])]) == 3
    assert (study_dir(engine) / "report.html").exists()
    study, s = load(engine)
    assert s.engine == name and (not tuner or s.tuner == tuner)
    for t in study.get_trials():
        assert t.user_attrs["config"]["width1"] == 8  # the same base and budgets everywhere


def test_kerastuner_trial_over_budget_ends_without_training(tiny_data, monkeypatch):
    import search.training

    monkeypatch.setattr(search.training, "fit", lambda *a, **k: pytest.fail("trained over budget"))
    s = Settings.from_options(
        space=str(TINY_SPACE),
        trials=2,
        epochs=2,
        train_size=200,
        val_size=100,
        engine="kerastuner",
        tuner="random",
    )
    s = replace(s, max_params=1000)
    create_or_resume("kt-budget", None, s, given=set(), enqueue_seed=False)
    from search.data import resolve_source

    run_worker("kt-budget", None, resolve_source(tiny_data))
    trials = load("kt-budget")[0].get_trials()
    assert len(trials) == 2
    for t in trials:
        assert t.state.name == "PRUNED" and t.user_attrs["end"] == "over_budget"
        assert t.user_attrs["epochs"] == 0 and t.constraints["params"] > 0


def test_retrain_works_on_a_kerastuner_study(tiny_data):
    from search import final
    from search.data import resolve_source

    assert (
        start("kt-retrain", tiny_data, "--engine", "kerastuner", "--tuner", "random", "--no-plots")
        == 0
    )
    out = final.retrain("kt-retrain", None, resolve_source(tiny_data), epochs=1, verbose=False)
    assert (out / "seed-0" / "model.keras").exists()


def test_jobs_and_tuner_options_are_checked(tiny_data, capsys):
    assert start("x1", tiny_data, "--engine", "kerastuner", "--jobs", "2") == 2
    assert start("x2", tiny_data, "--tuner", "random") == 2
    err = capsys.readouterr().err
    assert "one process" in err and "--tuner goes with --engine kerastuner" in err
