"""Retrain and test a study's best trial; the test split never reaches the search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import make_arrays, run_script
from optuna.trial import TrialState, create_trial

from search import data, final
from search import race as race_mod
from search.cli import main
from search.config import Config
from search.data import resolve_source
from search.errors import TestSplitGuardError, UserError
from search.record import BASE_CONFIG, Attr
from search.settings import Settings, create_or_resume, load
from search.worker import run_worker

TINY_SPACE = Path(__file__).parent / "spaces" / "tiny.toml"


def settings(**kw):
    options = dict(
        space=str(TINY_SPACE), trials=3, epochs=1, train_size=200, val_size=100, pruner="hyperband"
    )
    return Settings.from_options(**{**options, **kw})


def made_study(name="fin"):
    """A study whose trials are made by hand: 0 complete, 1 pruned, 2 over budget."""
    s = settings()
    study, _ = create_or_resume(name, None, s, given=set(), enqueue_seed=False)
    config = s.base().replace(learning_rate=0.003).to_dict()
    dist = {"learning_rate": optuna.distributions.FloatDistribution(1e-4, 0.1, log=True)}
    for state, end, detail, value in (
        (TrialState.COMPLETE, "complete", "complete after 1 epochs", 0.6),
        (TrialState.PRUNED, "pruned", "pruned at epoch 1", None),
        (TrialState.PRUNED, "over_budget", "parameters 2,000,000 exceed the limit", None),
    ):
        study.add_trial(
            create_trial(
                state=state,
                value=value,
                params={"learning_rate": 0.003},
                distributions=dist,
                user_attrs={"config": config, "end": end, "end_detail": detail},
            )
        )
    return study


def test_pruned_or_over_budget_trials_are_refused():
    study = made_study()
    with pytest.raises(
        UserError, match=r"trial 1 .* cannot be retrained: it was pruned \(pruned at epoch 1\)"
    ):
        final.pick_trial(study, 1)
    with pytest.raises(UserError, match=r"trial 2 .* cannot be retrained: it is over budget"):
        final.pick_trial(study, 2)
    with pytest.raises(UserError, match=r"has no trial 7"):
        final.pick_trial(study, 7)
    assert final.pick_trial(study).number == 0


def test_cli_refuses_a_pruned_trial_with_a_message(capsys, tiny_data):
    made_study("cli-fin")
    assert main(["retrain", "--study", "cli-fin", "--trial", "1", "--data", str(tiny_data)]) == 2
    assert "cannot be retrained: it was pruned" in capsys.readouterr().err


def test_retrain_uses_all_training_images_and_stretches_epochs(tiny_data):
    made_study()
    out = final.retrain("fin", None, resolve_source(tiny_data), epoch_factor=2, verbose=False)
    cfg = Config.from_json(out / "best_config.json")
    assert (cfg.val_size, cfg.train_size, cfg.epochs, cfg.learning_rate) == (0, None, 2, 0.003)
    train = json.loads((out / "seed-0" / "train.json").read_text())
    assert train["train_images"] == 300 and train["val_images"] == 0 and train["epochs"] == 2
    assert train["study"] == "fin" and train["trial"] == 0


def test_interrupted_retrain_resumes_from_its_checkpoint(tiny_data, monkeypatch):
    import search.training as training

    made_study()
    real = training._Watch.on_epoch_end
    epochs_run = []

    def stop_after_first(self, epoch, logs=None):
        real(self, epoch, logs)
        epochs_run.append(epoch + 1)
        if epoch + 1 == 1 and len(epochs_run) == 1:
            raise KeyboardInterrupt  # Ctrl-C right after epoch 1 was saved

    monkeypatch.setattr(training._Watch, "on_epoch_end", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        final.retrain("fin", None, resolve_source(tiny_data), epochs=3, verbose=False)
    out = final.retrain("fin", None, resolve_source(tiny_data), epochs=3, verbose=False)
    assert epochs_run == [1, 2, 3]  # the second run trained epochs 2 and 3 only
    history = (out / "seed-0" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3"]
    assert json.loads((out / "seed-0" / "train.json").read_text())["epochs"] == 3


def test_retrained_model_gives_identical_predictions_in_a_fresh_process(tiny_data, tmp_path):
    import keras

    made_study()
    out = final.retrain("fin", None, resolve_source(tiny_data), epochs=1, verbose=False)
    x = make_arrays(20, 1, seed=5)[0]
    model = keras.saving.load_model(out / "seed-0" / "model.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", model.predict(x, verbose=0))
    code = (
        "import numpy as np, keras; "
        f"m = keras.saving.load_model(r'{out / 'seed-0' / 'model.keras'}'); "
        f"got = m.predict(np.load(r'{tmp_path / 'x.npy'}'), verbose=0); "
        f"print(np.array_equal(got, np.load(r'{tmp_path / 'want.npy'}')))"
    )
    r = run_script("-c", code)
    assert r.stdout.strip().splitlines()[-1] == "True", r.stderr[-2000:]


def test_test_metrics_carry_their_provenance(tiny_data, capsys):
    made_study()
    final.retrain("fin", None, resolve_source(tiny_data), epochs=1, seeds=2, verbose=False)
    assert main(["test", "--study", "fin", "--data", str(tiny_data), "--tta"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "with flip TTA" in out and "with flip+shift TTA" in out
    m = json.loads((final.final_dir("fin") / "test_metrics.json").read_text())
    assert m["latency_tta_p50_ms"] > 0 and "with its TTA p50" in out  # 6 images a prediction
    for key in (
        "study",
        "trial",
        "config",
        "seeds",
        "data_source",
        "data_checksum_sha256",
        "versions",
        "git_commit",
        "test_evaluations",
        "accuracy",
        "per_class_accuracy",
        "confusion_matrix_summed_over_seeds",
        "params",
        "latency_p50_ms",
        "latency_p95_ms",
        "accuracy_tta_flip",
    ):
        assert key in m, key
    assert m["study"] == "fin" and m["trial"] == 0 and m["seeds"] == [0, 1]
    assert set(m["accuracy"]) == {"mean", "std"} and len(m["accuracy_per_seed"]) == 2
    assert m["versions"]["keras"] and m["config"]["val_size"] == 0
    assert (
        m["data_checksum_sha256"]
        == __import__("hashlib").sha256(tiny_data.read_bytes()).hexdigest()
    )
    assert m["test_evaluations"] == 1
    for key in ("accuracy_tta_flip", "accuracy_tta_flip_shift"):  # --tta reports both levels
        assert 0 <= m[key]["mean"] <= 1, key
    assert (final.final_dir("fin") / "confusion_matrix.png").exists()
    main(["test", "--study", "fin", "--data", str(tiny_data)])
    m = json.loads((final.final_dir("fin") / "test_metrics.json").read_text())
    assert m["test_evaluations"] == 2  # every look at the test set is counted
    assert m["latency_tta_p50_ms"] is None  # tested plain


def test_test_before_retrain_says_what_to_do(capsys, tiny_data):
    made_study("untrained")
    assert main(["test", "--study", "untrained", "--data", str(tiny_data)]) == 2
    assert "no retrained model" in capsys.readouterr().err


# --- the quarantine of the test split ---------------------------------------------------------


def test_search_never_requests_the_test_split(tiny_data, monkeypatch):
    requested = []
    real = data._load
    monkeypatch.setattr(
        data, "_load", lambda src, split: requested.append(split) or real(src, split)
    )
    s = settings(trials=2)
    create_or_resume("quarantine", None, s, given=set())
    run_worker("quarantine", None, resolve_source(tiny_data))
    assert requested and set(requested) == {"train"}


def test_test_loader_refuses_inside_a_running_study(tiny_data):
    """Even code inside a trial that asks for the test images gets an error."""
    src = resolve_source(tiny_data)
    seen = []

    def peeking_train(*a, **k):
        try:
            data.load_test(src)
        except TestSplitGuardError as e:
            seen.append(str(e))
        raise RuntimeError("stop here")

    create_or_resume("peek", None, settings(trials=1), given=set())
    with pytest.raises(
        UserError, match="5 trials in a row failed, the last with RuntimeError: stop here"
    ):
        run_worker("peek", None, src, train=peeking_train)
    assert seen and "inside a running search" in seen[0]
    assert load("peek")[0].trials[0].user_attrs["end"] == "error"


def test_test_images_do_not_influence_the_search(tmp_path):
    """The same study with the test images replaced by noise: the same trials and values."""
    x, y, xt, yt = make_arrays(300, 100)
    noise = np.random.default_rng(9).integers(0, 256, xt.shape).astype(np.uint8)
    outcomes = []
    for name, test_x in (("real-test", xt), ("noise-test", noise)):
        p = tmp_path / f"{name}.npz"
        np.savez(p, x_train=x, y_train=y, x_test=test_x, y_test=yt[::-1].copy())
        create_or_resume(name, None, settings(trials=3, epochs=2), given=set())
        run_worker(name, None, resolve_source(p))
        study = load(name)[0]
        outcomes.append(
            [(t.params, t.value, t.intermediate_values, t.state) for t in study.get_trials()]
        )
    assert outcomes[0] == outcomes[1]


# --- the race -------------------------------------------------------------------------------


def raced_study(name="race", base_end=None):
    """Three complete trials of three learning rates, searched values 0.6 > 0.5 > 0.4; with
    ``base_end``, first the space's base config (learning rate 0.02) ended that way after
    one epoch at 0.1, as a study queues it."""
    s = settings()
    study, _ = create_or_resume(name, None, s, given=set(), enqueue_seed=False)
    dist = {"learning_rate": optuna.distributions.FloatDistribution(1e-4, 0.1, log=True)}
    if base_end is not None:
        study.add_trial(
            create_trial(
                state=TrialState.PRUNED,
                params={"learning_rate": 0.02},
                distributions=dist,
                intermediate_values={1: 0.1},
                user_attrs={"config": s.base().replace(learning_rate=0.02).to_dict(),
                            "end": base_end, Attr.ENQUEUED: BASE_CONFIG},
            )
        )  # fmt: skip
    for lr, value in ((0.003, 0.6), (0.01, 0.5), (0.001, 0.4)):
        study.add_trial(
            create_trial(
                value=value,
                params={"learning_rate": lr},
                distributions=dist,
                user_attrs={"config": s.base().replace(learning_rate=lr).to_dict(),
                            "end": "complete"},
            )
        )  # fmt: skip
    return study


def test_the_race_picks_by_validation_and_never_loads_the_test_split(tiny_data, monkeypatch):
    raced_study()
    requested = []
    real_load, real_scores = data._load, race_mod._validation_scores
    monkeypatch.setattr(
        data, "_load", lambda src, split: requested.append(split) or real_load(src, split)
    )

    def scores(run, config, source):  # the search's second, trial 1, validates best
        out = real_scores(run, config, source)
        return {**out, "score": {0.003: 0.50, 0.01: 0.70}[config.learning_rate]}

    monkeypatch.setattr(race_mod, "_validation_scores", scores)
    out = final.retrain("race", None, resolve_source(tiny_data), epochs=1, race_k=2, verbose=False)
    assert set(requested) == {"train"}  # the race and the retrain: training images only
    plan = json.loads((out / "retrain.json").read_text())
    assert plan["trial"] == 1 and plan["race"]["winner"] == 1
    assert [c["trial"] for c in plan["race"]["candidates"]] == [0, 1]
    assert plan["race"]["train_images"] == 200 and plan["race"]["val_images"] == 100
    assert Config.from_json(out / "best_config.json").learning_rate == 0.01
    # resumable: run again, nothing is trained twice
    for module in (final, race_mod):  # the race and the retrain
        monkeypatch.setattr(module, "train_run", lambda *a, **k: pytest.fail("trained again"))
    final.retrain("race", None, resolve_source(tiny_data), epochs=1, race_k=2, verbose=False)
    assert main(["test", "--study", "race", "--data", str(tiny_data)]) == 0
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert metrics["race"]["winner"] == 1 and metrics["trial"] == 1


def test_the_space_base_config_races_whatever_the_search_made_of_it(tiny_data, monkeypatch, capsys):
    """The search stopped the base config after one epoch (a schedule still high there), yet
    at the retrain's length it validates best: the race lets it win, and it is retrained."""
    raced_study(base_end="paused")
    trained = []

    def train_run(config, source, run, **kw):  # records what it trained, in place of training
        run.mkdir(parents=True, exist_ok=True)
        (run / "train.json").write_text('{"train_images": 200, "val_images": 100}')
        trained.append(config.learning_rate)

    for module in (final, race_mod):  # the race and the retrain
        monkeypatch.setattr(module, "train_run", train_run)

    def scores(run, config, source):
        score = {0.003: 0.50, 0.01: 0.70, 0.02: 0.80}[config.learning_rate]
        return {"score": score, "scored_as": "plain"}

    monkeypatch.setattr(race_mod, "_validation_scores", scores)
    out = final.retrain("race", None, resolve_source(tiny_data), epochs=1, race_k=2)
    said = capsys.readouterr().out
    assert (
        "race: trial 0 (the space's base config, stopped by the search at 0.1000 after 1 " in said
    )
    assert "race: trial 1 (search value 0.6000)" in said and "race: trial 0 wins" in said
    assert "retraining trial 0 (stopped by the search at 0.1000 after 1 epochs)" in said
    plan = json.loads((out / "retrain.json").read_text())
    rows = {r["trial"]: r for r in plan["race"]["candidates"]}
    assert sorted(rows) == [0, 1, 2] and rows[0]["base"] and not rows[1]["base"]
    assert rows[0]["search_value"] is None and rows[1]["search_value"] == 0.6
    assert (rows[0]["search_score"], rows[0]["search_epochs"]) == (0.1, 1)  # where it stopped
    assert rows[1]["search_score"] == 0.6
    assert "search_train_size" in rows[1] and rows[1]["search_schedule"]  # what the hint reads
    assert plan["race"]["winner"] == 0 and plan["trial"] == 0
    assert trained == [0.02, 0.003, 0.01, 0.02]  # the base, the top two; the base retrained


def test_a_base_config_the_search_promoted_to_the_end_races_once_as_the_base(
    tiny_data, monkeypatch
):
    """seedrace: rungs on the race's split promoted the base config to the end; its complete
    segment carries the config, not the study's queue mark, and must still race as the base
    (first, once), so the report compares the pick with it."""
    study = raced_study(base_end="paused")  # stored so; shown "promoted" (record.continued)
    s = settings()
    dist = {"learning_rate": optuna.distributions.FloatDistribution(1e-4, 0.1, log=True)}
    study.add_trial(
        create_trial(
            value=0.55,
            params={"learning_rate": 0.02},
            distributions=dist,
            user_attrs={"config": s.base().replace(learning_rate=0.02).to_dict(),
                        "end": "complete", Attr.RESUME_OF: 0},
        )
    )  # fmt: skip
    assert [t.number for t in race_mod.entrants(study, 2)] == [4, 1]  # the base's segment first

    def train_run(config, source, run, **kw):
        run.mkdir(parents=True, exist_ok=True)
        (run / "train.json").write_text('{"train_images": 200, "val_images": 100}')

    for module in (final, race_mod):  # the race and the retrain
        monkeypatch.setattr(module, "train_run", train_run)
    monkeypatch.setattr(
        race_mod, "_validation_scores",
        lambda run, config, source: {"score": config.learning_rate, "scored_as": "plain"},
    )  # fmt: skip
    out = final.retrain("race", None, resolve_source(tiny_data), epochs=1, race_k=2,
                        verbose=False)  # fmt: skip
    rows = json.loads((out / "retrain.json").read_text())["race"]["candidates"]
    assert [(r["trial"], r["base"]) for r in rows] == [(4, True), (1, False)]
    won = final.against_base(json.loads((out / "retrain.json").read_text())["race"])[0]
    assert "base config (trial 4) won" in won


def with_a_race_run(study, **attrs):
    """Add to ``study`` a complete trial (value 0.9, learning rate 0.05) that ran the race's
    own run (all but the validation images, the race's epochs): its config."""
    s = settings()
    ran = s.base().replace(learning_rate=0.05, epochs=1, train_size=None, val_size=s.val_size)
    study.add_trial(
        create_trial(value=0.9, params={"learning_rate": 0.05}, distributions=LR,
                     user_attrs={"config": ran.to_dict(), "end": "complete", **attrs})
    )  # fmt: skip
    return ran


def fake_race_training(monkeypatch, what=lambda config, run: config.learning_rate):
    """The race and the retrain train nothing: each run folder gets a ``train.json`` and an
    empty model, every trained run is scored 0.5, and the list returned says what trained."""
    trained = []

    def train_run(config, source, run, **kw):
        run.mkdir(parents=True, exist_ok=True)
        (run / "train.json").write_text('{"train_images": 200, "val_images": 100, "epochs": 1}')
        (run / "model.keras").write_text("")
        trained.append(what(config, run))

    for module in (final, race_mod):  # the race and the retrain
        monkeypatch.setattr(module, "train_run", train_run)
    monkeypatch.setattr(race_mod, "_validation_scores", lambda *a: {"score": 0.5, "scored_as": "-"})
    return trained


LR = {"learning_rate": optuna.distributions.FloatDistribution(1e-4, 0.1, log=True)}


def test_a_trial_that_ran_the_race_run_in_the_study_is_scored_from_it_not_trained_again(
    tiny_data, monkeypatch, capsys, tmp_path
):
    """A study whose rungs trained on the race's split completes configs at the race's
    length: the race takes their validation accuracy instead of paying that length again."""
    study = raced_study()
    ran = with_a_race_run(study)
    t = study.get_trials(deepcopy=False)[-1]
    assert race_mod.ran_in_study(t, ran) and not race_mod.ran_in_study(t, ran.replace(seed=1))
    tta = create_trial(value=0.9, params={"learning_rate": 0.05}, distributions=LR,
                       user_attrs={"config": ran.replace(tta_flip=True).to_dict()})  # fmt: skip
    assert not race_mod.ran_in_study(tta, ran.replace(tta_flip=True))  # TTA needs the model
    levels = {"plain": 0.9, "flip": 0.91, "flip_shift": 0.92}  # ... or the levels a study records
    recorded = create_trial(value=0.9, params={"learning_rate": 0.05}, distributions=LR,
                            user_attrs={"config": ran.replace(tta_flip=True).to_dict(),
                                        Attr.VAL_TTA: levels})  # fmt: skip
    assert race_mod.ran_in_study(recorded, ran.replace(tta_flip=True))
    src = resolve_source(tiny_data)
    scored = race_mod._scores_from_study(recorded, ran.replace(tta_flip=True), src, tmp_path)
    assert (scored["score"], scored["scored_as"]) == (0.91, "flip")  # at the config's level
    trained_here = tmp_path / "trained"  # trained by the race already, for a TTA choice
    trained_here.mkdir()
    (trained_here / "train.json").write_text('{"epochs": 1}')
    race_mod._scores_from_study(recorded, ran, src, trained_here)
    assert json.loads((trained_here / "train.json").read_text()) == {"epochs": 1}  # kept
    trained = fake_race_training(monkeypatch)
    out = final.retrain("race", None, src, epochs=1, race_k=2)
    rows = {r["trial"]: r for r in json.loads((out / "retrain.json").read_text())["race"]["candidates"]}  # fmt: skip
    assert rows[3]["from_study_trial"] == 3 and rows[3]["validation"] == {"plain": 0.9}
    said = capsys.readouterr().out
    assert "trial-3: the study ran this race run, scored from it" in said
    assert "trial-0: the study" not in said
    assert trained == [0.003, 0.05]  # the race trained trial 0 only; the retrain, the winner
    kept = json.loads((out / "race" / "trial-3" / "train.json").read_text())
    assert kept["epochs"] == 0 and kept["train_images"] > 0  # counted once, in the search


def test_schedule_replaces_the_searched_schedule_in_the_race_and_the_retrain(
    tiny_data, monkeypatch, capsys
):
    """A search on wsd rungs, retrained with one-cycle: both stages train one-cycle, and a race
    folder of the searched schedule is refused, not reused."""
    raced_study()
    trained = []

    def train_run(config, source, run, **kw):  # what it trained, with the config it writes
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(config.to_dict()))
        (run / "train.json").write_text('{"train_images": 200, "val_images": 100}')
        (run / "model.keras").write_text("")
        trained.append((config.schedule, config.val_size))

    for module in (final, race_mod):  # the race and the retrain
        monkeypatch.setattr(module, "train_run", train_run)
    monkeypatch.setattr(race_mod, "_validation_scores", lambda *a: {"score": 0.5, "scored_as": "-"})
    src = resolve_source(tiny_data)
    out = final.retrain("race", None, src, epochs=1, race_k=1, schedule="onecycle", verbose=False)
    assert trained == [("onecycle", 100), ("onecycle", 0)]  # the race's entrant, the retrain
    assert Config.from_json(out / "best_config.json").schedule == "onecycle"
    args = ["retrain", "--study", "race", "--data", str(tiny_data), "--race", "1", "--epochs", "1"]
    assert main(args) == 2  # the searched schedule: the race folder holds one-cycle runs
    err = capsys.readouterr().err
    assert "holds a race run of another config" in err and "schedule constant" in err
    assert len(trained) == 2  # nothing trained
    assert main(["train", "--preset", "seed", "--schedule", "wsd"]) == 2
    assert "--schedule goes with --study NAME" in capsys.readouterr().err


def test_choose_tta_trains_a_winner_scored_from_the_study_once_and_tests_at_its_level(
    tiny_data, monkeypatch, capsys
):
    """seedrace: the winner's race run was the study's, so there is no model to try TTA on;
    the race trains that run once, picks the level on validation (a tie: fewer passes) and
    the retrain's config carries it to the test."""
    with_a_race_run(raced_study())
    trained = fake_race_training(
        monkeypatch, lambda c, run: (c.learning_rate, c.tta_flip, c.tta_shift)
    )
    monkeypatch.setattr(race_mod, "load_keras", lambda path: "model")
    levels = {"plain": 0.80, "flip": 0.83, "flip_shift": 0.83}
    monkeypatch.setattr(
        race_mod, "tta_scores",
        lambda model, x, y, level: {k: {"accuracy": a} for k, a in levels.items()},
    )  # fmt: skip
    src = resolve_source(tiny_data)
    out = final.retrain("race", None, src, epochs=1, race_k=2, choose_tta=True)
    said = capsys.readouterr().out
    assert "to choose the TTA level" in said and "race winner's model: flip (plain 0.8000" in said
    assert said.index("trial 3 wins") < said.index("TTA chosen")
    plan = json.loads((out / "retrain.json").read_text())
    assert plan["trial"] == 3 and plan["race"]["tta"] == {"validation": levels, "chosen": "flip"}
    assert trained == [(0.003, False, False), (0.05, False, False), (0.05, True, False)]
    race_run = json.loads((out / "race" / "trial-3" / "train.json").read_text())
    assert "from_study_trial" not in race_run  # trained, and counted
    best = Config.from_json(out / "best_config.json")
    assert (best.tta_flip, best.tta_shift) == (True, False)
    # resumable: the race's model is kept and scored again, nothing is trained twice
    final.retrain("race", None, src, epochs=1, race_k=2, choose_tta=True, verbose=False)
    assert len(trained) == 3
    assert main(["retrain", "--study", "race", "--data", str(tiny_data), "--choose-tta"]) == 2
    assert "--choose-tta chooses on the race's validation images: add --race K" in (
        capsys.readouterr().err
    )
    assert main(["train", "--preset", "seed", "--choose-tta"]) == 2
    assert "--choose-tta goes with --study NAME" in capsys.readouterr().err


def test_choose_tta_takes_the_levels_a_study_recorded_and_trains_nothing(tiny_data, monkeypatch):
    levels = {"plain": 0.90, "flip": 0.92, "flip_shift": 0.91}
    with_a_race_run(raced_study(name="known"), **{Attr.VAL_TTA: levels})
    trained = fake_race_training(monkeypatch, lambda config, run: run.name)
    out = final.retrain("known", None, resolve_source(tiny_data), epochs=1, race_k=1,
                        choose_tta=True, verbose=False)  # fmt: skip
    assert trained == ["seed-0"]  # the retrain only: the race's winner and its TTA from the study
    assert json.loads((out / "retrain.json").read_text())["race"]["tta"]["chosen"] == "flip"


@pytest.mark.parametrize(
    "end, raced",
    [("over_budget", [1, 2]), ("diverged", [1, 2]), ("error", [1, 2]), ("pruned", [0, 1, 2]),
     ("paused", [0, 1, 2])],
)  # fmt: skip
def test_the_base_config_enters_the_race_first_only_if_it_trained_within_budget(end, raced):
    study = raced_study(base_end=end)
    assert [t.number for t in race_mod.entrants(study, 2)] == raced
    assert [t.number for t in race_mod.entrants(study, 3)] == raced[:-2] + [1, 2, 3]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--race", "0"], "--race must be at least 1, got 0"),
        (
            ["--race", "4"],
            "--race 4 needs 4 complete trials with distinct configs; study 'race' has 3",
        ),
        (["--race", "2", "--trial", "0"], "--race picks the trial; it does not go with --trial"),
    ],
)
def test_bad_race_options_are_refused_by_name(args, message, tiny_data, capsys):
    raced_study()
    assert main(["retrain", "--study", "race", "--data", str(tiny_data), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (final.final_dir("race") / "race").exists()  # nothing trained


def test_the_test_report_sets_the_pick_against_the_base_config_when_it_raced():
    race = {"epochs": 10, "train_images": 45000, "winner": 3,
            "candidates": [{"trial": 3, "base": False, "score": 0.8412},
                           {"trial": 0, "base": True, "score": 0.8190}]}  # fmt: skip
    (line,) = final.against_base(race)
    assert "trial 3 0.8412 against the space's base config (trial 0) 0.8190: +2.22 points" in line
    assert "validation after 10 epochs on 45,000 images" in line
    (won,) = final.against_base({**race, "winner": 0})
    assert "base config (trial 0) won, 0.8190: the search found nothing better" in won
    assert final.against_base({**race, "candidates": race["candidates"][:1]}) == []
    assert final.against_base(None) == []
    tta = {
        "validation": {"plain": 0.83, "flip": 0.8412, "flip_shift": 0.8456},
        "chosen": "flip_shift",
    }
    assert final.tta_choice({**race, "tta": tta}) == [
        "TTA chosen on validation with the race winner's model: flip+shift (plain 0.8300, "
        "flip 0.8412, flip+shift 0.8456)"
    ]
    assert final.tta_choice(race) == []


def test_the_test_report_says_when_the_search_ranked_the_race_winner_last():
    """seedplus's race: the search stopped the base config at 0.4426 after one epoch of 10,000
    images, below the three trials it raced, and at full length the base won by two points."""
    race = {"epochs": 10, "train_images": 45000, "winner": 0,
            "candidates": [{"trial": 0, "base": True, "score": 0.8308, "search_score": 0.4426,
                            "search_epochs": 1},
                           {"trial": 22, "base": False, "score": 0.8056, "search_score": 0.7068,
                            "search_epochs": 6},
                           {"trial": 30, "base": False, "score": 0.8132, "search_score": 0.7024,
                            "search_epochs": 6}]}  # fmt: skip
    won, order, hint = final.against_base(race)
    assert "base config (trial 0) won, 0.8308" in won
    assert order == (
        "the search ranked them 22 (0.7068, epoch 6), 30 (0.7024, epoch 6), 0 (0.4426, epoch 1); "
        "the race: 0 (0.8308), 30 (0.8132), 22 (0.8056)"
    )
    assert "ranked last in the search" in hint and "--train-size" in hint  # an older race
    small_wsd = {**race, "candidates": [{**c, "search_train_size": 10000, "search_schedule": "wsd"}
                                        for c in race["candidates"]]}  # fmt: skip
    hint = final.against_base(small_wsd)[-1]
    assert "race's split" in hint and "had 10,000" in hint and "schedule=wsd" not in hint
    full_onecycle = {**race, "candidates": [
        {**c, "search_train_size": None, "search_schedule": "onecycle"} for c in race["candidates"]
    ]}  # fmt: skip
    hint = final.against_base(full_onecycle)[-1]
    assert "schedule=wsd" in hint and "race's split" not in hint
    agreed = {**race, "winner": 22,
              "candidates": [{**c, "score": c["search_score"] + 0.1} for c in race["candidates"]]}  # fmt: skip
    assert len(final.against_base(agreed)) == 2  # the same order: no hint
    older = {**race, "candidates": [{**c, "search_score": None} for c in race["candidates"]]}
    assert len(final.against_base(older)) == 1  # a race from before the search's scores
