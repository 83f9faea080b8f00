"""Search studies on tiny synthetic data: trials, pruning, budgets, resume, seeds, workers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from conftest import assert_killing_config_tried_twice, run_killing_workers, run_script

import search.settings
from search.cli import main
from search.data import resolve_source
from search.errors import UserError
from search.objective import Objective
from search.report import trials_frame
from search.settings import Settings, create_or_resume, load, make_pruner, make_sampler
from search.space import load_space
from search.storage import study_dir
from search.worker import run_worker

TINY_SPACE = Path(__file__).parent / "spaces" / "tiny.toml"


def settings(trials=4, epochs=2, **kw):
    kw.setdefault("pruner", "hyperband")  # these tests are of a study's trials, not of pausing
    limits = {k: kw.pop(k) for k in ("max_params", "max_latency_ms") if k in kw}
    s = Settings.from_options(
        space=str(TINY_SPACE), trials=trials, epochs=epochs, train_size=200, val_size=100, **kw
    )
    return replace(s, **limits)


def run_study(name, data, enqueue_seed=True, train=None, **kw):
    s = settings(**kw)
    create_or_resume(name, None, s, given=set(kw), enqueue_seed=enqueue_seed)
    run_worker(name, None, resolve_source(data), train=train)
    return load(name)[0]


def test_small_study_completes_with_every_attribute_stored(tiny_data, capsys):
    study = run_study("s4", tiny_data, trials=4, epochs=2)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(
        t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        for t in trials
    )
    space = load_space(TINY_SPACE)
    assert trials[0].params == space.base_point()  # the base config runs first
    for t in trials:
        ua = t.user_attrs
        assert {
            "config",
            "n_params",
            "latency_p50_ms",
            "latency_p95_ms",
            "epochs",
            "train_seconds",
            "end",
            "end_detail",
        } <= set(ua)
        assert ua["config"]["width1"] == 8 and ua["config"]["epochs"] == 2
        assert ua["config"]["train_size"] == 200 and ua["config"]["val_size"] == 100
        assert ua["end"] in ("complete", "pruned", "diverged")
        assert 1 <= ua["epochs"] <= 2 and len(t.intermediate_values) == ua["epochs"]
        assert "val_accuracy_tta" not in ua  # a subset: the race never takes its runs
    out = capsys.readouterr().out
    assert out.count("params  val") == 4 and "best" in out


def test_a_complete_trial_on_the_races_split_records_its_tta_levels_and_is_not_run_twice(
    tiny_data, monkeypatch
):
    """All but the validation images, as the race trains: its TTA levels are kept, so the
    race takes the trial's run and chooses TTA without training it again. A sampler that draws
    the same config again (fastwidth's seeded random start drew the preset's widths as its
    first sample) gets the earlier trial's value, and nothing is trained."""
    from search.space import Space

    real = Space.suggest
    monkeypatch.setattr(  # trial 1 draws the base config, which trial 0 ran
        Space, "suggest", lambda self, t: self.base_point() if t.number else real(self, t)
    )
    s = Settings.from_options(space=str(TINY_SPACE), trials=2, epochs=1, val_size=100)
    create_or_resume("split", None, s, given=set(), enqueue_seed=True)
    run_worker("split", None, resolve_source(tiny_data))
    first, again = load("split")[0].get_trials()
    assert first.state == again.state == optuna.trial.TrialState.COMPLETE
    assert first.user_attrs["config"]["train_size"] is None
    levels = first.user_attrs["val_accuracy_tta"]
    assert list(levels) == ["plain", "flip", "flip_shift"]
    assert abs(levels["plain"] - first.value) <= 0.01  # one of the 100 images at most
    rows = trials_frame(load("split")[0]).set_index("number")
    assert rows.loc[0, "value_tta"] == levels["flip_shift"]  # trials.csv, status
    assert again.value == first.value and again.user_attrs["same_as"] == 0
    assert again.user_attrs["epochs"] == 0 and again.user_attrs["val_accuracy_tta"] == levels
    assert "the same config as trial 0" in again.user_attrs["end_detail"]


def test_pruning_really_stops_a_trial(tiny_data, monkeypatch):
    # a pruner that prunes everything: every trial must end after its first epoch
    monkeypatch.setattr(
        search.settings, "make_pruner", lambda s: optuna.pruners.ThresholdPruner(lower=1.1)
    )
    study = run_study("prune", tiny_data, trials=2, epochs=4)
    for t in study.get_trials():
        assert t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["end"] == "pruned" and t.user_attrs["epochs"] == 1
        assert t.user_attrs["end_detail"] == "pruned at epoch 1"


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


@pytest.mark.parametrize("epochs", [3, 9])  # Hyperband (min 1, factor 3) has a rung there
def test_a_trial_that_trained_every_epoch_is_never_pruned_at_its_last_epoch(epochs):
    objective = Objective(settings(epochs=epochs), split=None)
    trial = optuna.create_study(direction="maximize", pruner=AlwaysPrune()).ask()
    report = objective.reporter(trial)
    verdicts = [report(e, {"val_accuracy": 0.5}) for e in range(1, epochs + 1)]
    assert verdicts == [True] * (epochs - 1) + [False]
    assert trial.study.trials[0].intermediate_values[epochs] == 0.5  # still reported


def rung_verdicts(pruner: str, values: list[float], trials: int = 30) -> list[bool]:
    """Whether each of a row of 6-epoch trials is stopped after reporting ``value`` at epochs 1
    and 2, the trials one after another as a one-worker study runs them."""
    pruner_ = make_pruner(settings(pruner=pruner, epochs=6, trials=trials))
    study = optuna.create_study(direction="maximize", pruner=pruner_)
    out = []
    for v in values:
        t = study.ask()
        t.report(v, 1)
        t.report(v, 2)
        out.append(t.should_prune())
        study.tell(t, state=optuna.trial.TrialState.PRUNED)
    return out


def test_asha_screens_a_studys_first_trials_where_hyperband_trains_them_in_full():
    """Hyperband promotes a trial that is alone at its rung, so the first trials of a study all
    train in full. asha stops each trial at 2 epochs until 2 others have reached that rung, then
    lets only the best third go on."""
    values = [0.3, 0.4, 0.5, 0.9, 0.1, 0.2]
    assert rung_verdicts("hyperband", values)[0] is False
    assert rung_verdicts("asha", values) == [True, True, False, False, True, True]


def test_asha_in_a_small_study_lets_a_trial_alone_at_its_rung_go_on():
    """With under 10 trials the first two cannot be spared: a study of 2 whose first trial is
    its best would otherwise end with no complete trial."""
    assert rung_verdicts("asha", [0.5, 0.4], trials=2) == [False, True]


def sampled_points(s: Settings, n: int, restarts: int = 0, held: int = 0) -> list[dict]:
    """The first n points the study's sampler draws from the tiny space, each told a value
    that depends on it (so TPE, past its random start, has something to model)."""
    space = load_space(TINY_SPACE)
    sampler = make_sampler(s, restarts=restarts, held=held)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    out = []
    for _ in range(n):
        t = study.ask()
        p = space.suggest(t)
        study.tell(t, p["learning_rate"] * (1 + p["dropout1"]))
        out.append(p)
    return out


def test_a_restarted_worker_does_not_replay_its_first_lifes_draws():
    """A worker that replaced its process (memory recycling) builds its sampler anew: seeded
    as before, it drew the same configs again (a 40-trial random study held 9 distinct ones)."""
    s = settings(sampler="random", seed=5)
    first, again = sampled_points(s, 6, restarts=0), sampled_points(s, 6, restarts=1)
    assert first == sampled_points(s, 6, restarts=0)  # still reproducible
    assert not any(p in first for p in again)


def test_a_resumed_study_does_not_replay_its_first_starts_draws():
    """A study resumed by a new command seeded its sampler as its first start did: a seeded
    random study (fastwidth) drew its first 3 configs again, each caught as a duplicate and
    counted toward the target, so 8 trials held 5 distinct configs."""
    s = settings(sampler="random", seed=0)
    first, resumed = sampled_points(s, 4), sampled_points(s, 4, held=4)
    assert first == sampled_points(s, 4, held=0)  # a fresh study as before
    assert resumed == sampled_points(s, 4, held=4)  # still reproducible
    assert not any(p in first for p in resumed)


def test_startup_trials_sets_where_tpe_stops_sampling_at_random():
    short = sampled_points(settings(startup_trials=2), 6)
    default = sampled_points(settings(startup_trials=10), 6)  # the same seed and random start
    assert short[:2] == default[:2] and short[2:] != default[2:]


def test_over_budget_configs_end_without_training(tiny_data):
    def train(*a, **k):
        pytest.fail("trained an over-budget config")

    study = run_study("budget", tiny_data, trials=3, max_params=1000, train=train)
    for t in study.get_trials():
        assert t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["end"] == "over_budget" and t.user_attrs["epochs"] == 0
        assert "exceed the limit 1,000 by" in t.user_attrs["end_detail"]
        assert t.constraints["params"] > 0  # the sampler sees it as infeasible
        assert t.user_attrs["seconds"] < 10


def test_resume_continues_to_the_new_total(tiny_data):
    first = run_study("resume", tiny_data, trials=2, epochs=1)
    before = [(t.number, t.params, t.value) for t in first.get_trials()]
    study = run_study("resume", tiny_data, trials=4, epochs=1)
    trials = study.get_trials()
    assert len(trials) == 4
    assert [(t.number, t.params, t.value) for t in trials[:2]] == before


def test_a_study_past_its_timeout_says_why_it_starts_nothing_and_how_to_go_on(tiny_data, capsys):
    args = ["start", "--study", "late", "--space", str(TINY_SPACE), "--trials", "2", "--epochs",
            "1", "--train-size", "200", "--val-size", "100", "--data", str(tiny_data),
            "--no-plots", "--quiet"]  # fmt: skip
    assert main([*args, "--timeout", "0"]) == 0
    assert main(args) == 0  # resumed without a new --timeout: the stored deadline holds
    out = capsys.readouterr().out
    assert out.count("0 trials so far, target 2, 0 to run (its --timeout ran out at ") == 2
    assert "give a new --timeout S to run the rest" in out


def test_resume_refuses_contradicting_settings(tiny_data):
    run_study("clash", tiny_data, trials=1, epochs=1)
    with pytest.raises(
        UserError, match=r"exists with other settings: epochs \(stored 1, given 3\)"
    ):
        create_or_resume("clash", None, settings(trials=2, epochs=3), given={"epochs"})


def no_training(*a, **k):
    """Stands in for training in tests of the search machinery around it (seconds saved)."""
    from search.training import RunResult

    return RunResult("complete", 1, 0.0, {"loss": [1.0], "val_accuracy": [0.5]})


def test_start_set_fixes_a_key_for_every_trial_and_the_study_keeps_it(tiny_data, capsys):
    study = run_study("fixed", tiny_data, trials=2, epochs=1, train=no_training,
                      fixed={"schedule": "wsd", "cooldown": 0.25})  # fmt: skip
    configs = [t.user_attrs["config"] for t in study.get_trials()]
    assert [(c["schedule"], c["cooldown"]) for c in configs] == [("wsd", 0.25)] * 2
    stored = Settings.of(study)  # what a resume, a worker or the race reads
    assert stored.fixed == {"schedule": "wsd", "cooldown": 0.25}
    assert stored.base().schedule == "wsd" and stored.space().base.cooldown == 0.25
    with pytest.raises(UserError, match=r"exists with other settings: fixed"):
        create_or_resume("fixed", None, settings(trials=3, epochs=1), given={"fixed"})
    argv = ["start", "--study", "fixed", "--space", str(TINY_SPACE), "--pruner", "hyperband",
            "--epochs", "1", "--train-size", "200", "--val-size", "100", "--no-plots"]  # fmt: skip
    assert main([*argv, "--set", "schedule=onecycle", "--data", str(tiny_data)]) == 2
    assert "exists with other settings: fixed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "fixed, message",
    [
        ({"learning_rate": 0.01}, r"--set: learning_rate is searched by .*tiny.toml"),
        ({"epochs": 3}, r"--set epochs: a study sets it with --epochs"),
        ({"schedule": "weekly"}, r"--set: .*schedule"),
        ({"no_such_key": 1}, r"--set: unknown key\(s\) no_such_key"),
    ],
)
def test_start_set_refuses_what_it_cannot_fix_by_name(fixed, message):
    with pytest.raises(UserError, match=message):
        settings(fixed=fixed)


def test_start_set_parses_json_values_and_bare_words():
    from search.cli.common import parse_set

    assert parse_set(["batch_size=64", "schedule=wsd", "whiten=true"]) == {
        "batch_size": 64, "schedule": "wsd", "whiten": True}  # fmt: skip
    with pytest.raises(UserError, match="--set takes KEY=VALUE, got 'schedule'"):
        parse_set(["schedule"])


def test_same_seed_gives_the_same_sampled_configs(tiny_data):
    a = run_study("seed-a", tiny_data, trials=3, epochs=1, seed=7, train=no_training)
    b = run_study("seed-b", tiny_data, trials=3, epochs=1, seed=7, train=no_training)
    c = run_study("seed-c", tiny_data, trials=3, epochs=1, seed=8, train=no_training)
    pa, pb, pc = ([t.params for t in s.get_trials()] for s in (a, b, c))
    assert pa == pb and pa != pc


def test_tpe_after_its_random_start_is_reproducible_too():
    """Past the startup trials TPE depends on the values; with the same values it repeats."""
    assert sampled_points(settings(seed=3), 14) == sampled_points(settings(seed=3), 14)


def test_interrupted_trial_is_failed_and_the_study_stays_usable(tiny_data):
    calls = {"n": 0}

    def interrupt_second(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return no_training(*a, **k)

    with pytest.raises(KeyboardInterrupt):
        run_study("ctrlc", tiny_data, trials=3, epochs=1, train=interrupt_second)
    study = load("ctrlc")[0]
    t1 = study.get_trials()[1]
    assert t1.state == optuna.trial.TrialState.FAIL and t1.user_attrs["end"] == "interrupted"
    study = run_study("ctrlc", tiny_data, trials=3, epochs=1, train=no_training)
    states = [t.state.name for t in study.get_trials()]
    assert states.count("COMPLETE") + states.count("PRUNED") == 3 and states[1] == "FAIL"


def test_a_trial_whose_local_worker_died_is_retried_even_by_a_worker_with_nothing_left(
    tiny_data,
):
    """A worker whose own last trial is done still fails another worker's trial once that
    worker's process is gone, and runs the retry before it exits."""
    import socket
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    dying = {}

    def train_while_another_worker_dies(*a, **k):
        if not dying:
            other = load("dead")[0]
            t = other.ask()
            t.set_user_attr("host", socket.gethostname())
            t.set_user_attr("pid", gone.pid)
            dying["number"] = t.number
        return no_training()

    s = settings(trials=2, epochs=1)
    create_or_resume("dead", None, s, given=set(), enqueue_seed=True)
    run_worker("dead", None, resolve_source(tiny_data), train=train_while_another_worker_dies)
    trials = load("dead")[0].get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert dying["number"] == 1 and trials[1].user_attrs["end"] == "lost"
    assert trials[2].user_attrs["retry_of"] == 1


def test_a_trial_that_raises_is_failed_with_its_reason_and_the_worker_goes_on(tiny_data):
    calls = {"n": 0}

    def boom_first(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise MemoryError("out of memory in a test")
        return no_training(*a, **k)

    study = run_study("boom", tiny_data, trials=2, epochs=1, train=boom_first)
    trials = study.get_trials()
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert trials[0].user_attrs["end"] == "error"
    assert trials[0].user_attrs["end_detail"].startswith("MemoryError: out of memory in a test")
    assert "Traceback" in trials[0].user_attrs["end_detail"]
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 2


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 101, "with space"])
def test_study_names_that_could_escape_results_are_refused(name):
    with pytest.raises(UserError, match="is not allowed"):
        study_dir(name)


def test_cli_start_status_and_bad_inputs(tiny_data, capsys):
    args = [
        "start",
        "--study",
        "cli",
        "--space",
        str(TINY_SPACE),
        "--trials",
        "2",
        "--epochs",
        "1",
        "--train-size",
        "200",
        "--val-size",
        "100",
        "--data",
        str(tiny_data),
        "--no-plots",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "study cli: 0 trials so far, target 2, 2 to run" in out  # trial 0 queued, not run
    assert "study cli: 2 trials" in out and "results:" in out
    assert main(["status", "--study", "cli"]) == 0
    out = capsys.readouterr().out
    assert "best config:" in out and '"width1": 8' in out
    assert main(["status", "--study", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    assert main(["plots", "--study", "nope"]) == 2
    assert not study_dir("nope").exists()  # a read command creates nothing
    assert main(["start", "--study", "../x", "--space", str(TINY_SPACE)]) == 2
    assert main(["start", "--study", "y", "--space", "missing.toml"]) == 2
    assert "missing.toml does not exist" in capsys.readouterr().err
    assert main(["start", "--study", "z", "--space", str(TINY_SPACE), "--startup-trials", "-1"])
    assert "--startup-trials must be 0 or more, got -1" in capsys.readouterr().err


def test_two_local_worker_processes_share_one_study(tiny_data, tmp_path):
    r = run_script(
        "-m",
        "search.cli",
        "start",
        "--study",
        "jobs",
        "--space",
        str(TINY_SPACE),
        "--trials",
        "6",
        "--epochs",
        "1",
        "--train-size",
        "200",
        "--val-size",
        "100",
        "--jobs",
        "2",
        "--data",
        str(tiny_data),
        "--no-plots",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "lock" not in r.stderr.lower()
    study = load("jobs")[0]
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 6
    assert {t.user_attrs["worker"] for t in done} == {"0", "1"}  # both workers ran trials
    assert all(json.dumps(t.user_attrs["config"]) for t in done)


@pytest.mark.soak
def test_a_worker_does_not_grow_without_bound(tiny_data):
    """Resident memory after 12 trials stays within 150 MB of its value after trial 2.

    TensorFlow keeps each trial's traced graphs (about 20 MB a trial), clear_session or not,
    so a command-line worker restarts itself between trials once it has grown by
    CIFAR10_RECYCLE_MB (lowered here so that restarts happen within 12 tiny trials; without
    them the 10 trials after trial 2 would add about 200 MB)."""
    r = run_script(
        "-m", "search.cli", "start", "--study", "memory", "--space", str(TINY_SPACE),
        "--trials", "12", "--epochs", "1", "--train-size", "200", "--val-size", "100",
        "--pruner", "none", "--sampler", "random", "--data", str(tiny_data), "--no-plots",
        env={"CIFAR10_RECYCLE_MB": "50"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    trials = load("memory")[0].get_trials()
    assert [t.number for t in trials] == list(range(12))
    assert all(t.state.name == "COMPLETE" for t in trials)
    rss = [t.user_attrs["rss_mb"] for t in trials]
    assert rss[-1] - rss[1] < 150, rss
    restarts = [t.user_attrs["process_restarts"] for t in trials]
    assert restarts == sorted(restarts) and restarts[-1] >= 1, restarts
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 12  # no replays
    assert "restarting it to free" in r.stdout
    assert r.stdout.count("results:") == 1  # one summary, after the last trial


def test_an_interrupt_python_ignores_prints_no_traceback(capsys):
    """Ctrl-C inside a weakref callback or __del__ is 'ignored' by Python, which would print a
    traceback; the command's hook keeps quiet about it (STOP still stops training) but not
    about other exceptions."""
    import sys

    from search.cli.common import _quiet_interrupts

    class Raises:
        def __init__(self, exc):
            self.exc = exc

        def __del__(self):
            raise self.exc

    previous, sys.unraisablehook = sys.unraisablehook, _quiet_interrupts
    try:
        Raises(KeyboardInterrupt())
        quiet = capsys.readouterr().err
        Raises(ValueError("boom"))
        loud = capsys.readouterr().err
    finally:
        sys.unraisablehook = previous
    assert quiet == ""
    assert "ValueError: boom" in loud


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_a_bad_worker_setting_in_the_environment_is_named(value):
    r = run_script(
        "-m", "search.cli", "status", "--study", "none", env={"CIFAR10_RECYCLE_MB": value}
    )  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"CIFAR10_RECYCLE_MB={value!r} is not a positive number" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_config_that_kills_its_worker_is_tried_twice_then_left(tiny_data):
    """Journal storage: a dead worker's trial is failed by the next worker and retried once;
    when the retry kills its worker too, it is failed and not queued again."""
    s = settings(trials=3, epochs=1)
    create_or_resume("killer", None, s, given=set(), enqueue_seed=True)
    codes = run_killing_workers("killer", "", tiny_data)
    assert codes == [-9, -9, 0]
    assert_killing_config_tried_twice(load("killer")[0], 3, "died")


def test_a_damaged_journal_line_is_named_without_a_traceback(tiny_data, capsys):
    run_study("damaged", tiny_data, trials=2, epochs=1, train=no_training)
    log = study_dir("damaged") / "study.log"
    lines = log.read_text().splitlines(keepends=True)
    lines[3] = lines[3][: len(lines[3]) // 2] + "\n"  # a record cut in half, mid-file
    log.write_text("".join(lines))
    for command in ("status", "plots"):
        assert main([command, "--study", "damaged"]) == 2
        err = capsys.readouterr().err
        assert f"{log} is damaged at line 4 of {len(lines)}" in err
        assert "The 3 lines before it hold the study up to that point" in err
        assert f"head -n 3 {log}" in err and "Traceback" not in err


@pytest.mark.parametrize("verbose", ["", "1"])
def test_the_command_line_hides_tensorflows_start_up_lines_unless_asked(verbose, monkeypatch):
    # an earlier test's main() ran configure_libraries() in this process, which set the
    # variable for good
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    r = run_script("-c", CONFIGURED_KERAS, env={"CIFAR10_VERBOSE": verbose})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
    chatter = "absl::InitializeLog" in r.stderr or "oneDNN custom operations" in r.stderr
    assert chatter == bool(verbose), r.stderr[-2000:]


CONFIGURED_KERAS = (
    "from search.cli.common import configure_libraries; configure_libraries(); import keras; "
    "print('ok')"
)


@pytest.mark.parametrize("users", [None, "0"])
def test_the_command_line_turns_onednn_on_unless_the_user_chose(users, monkeypatch):
    # TensorFlow's own default leaves oneDNN off on CPUs without AVX-512 (this machine's)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    if users is not None:
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", users)
    r = run_script("-c", CONFIGURED_KERAS, env={"CIFAR10_VERBOSE": "1"})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
    assert ("oneDNN custom operations are on" in r.stderr) == (users is None), r.stderr[-2000:]


def _timed(*args: str) -> tuple[float, object]:
    import time

    t0 = time.perf_counter()
    r = run_script(*args)
    return time.perf_counter() - t0, r


def test_commands_that_need_no_model_answer_at_once_without_tensorflow(tiny_data, tmp_path):
    """``status`` and ``plots`` of a small study and a bad space file, as whole processes,
    against Python's own start-up in the same run: well under TensorFlow's import (about 4 s
    here); nor do they import what the figures never use (matplotlib, scikit-learn)."""
    run_study("prompt", tiny_data, trials=2, epochs=1, train=no_training)
    bad = tmp_path / "bad.toml"
    bad.write_text("[params.lr\n")
    probe = (
        "import sys; from search.cli import main; rc = main(sys.argv[1:]); "
        "print('TF', 'tensorflow' in sys.modules, 'keras', 'keras' in sys.modules, "
        "'mpl', 'matplotlib' in sys.modules, 'sklearn', 'sklearn' in sys.modules); sys.exit(rc)"
    )
    base, _ = _timed("-c", "pass")
    for args, rc in (
        (["status", "--study", "prompt"], 0),
        (["plots", "--study", "prompt"], 0),
        (["start", "--study", "bad", "--space", str(bad)], 2),
        (["predict", "--model", str(tmp_path / "none.onnx"), str(bad)], 2),
    ):
        seconds, r = _timed("-c", probe, *args)
        assert r.returncode == rc, r.stderr[-2000:]
        assert "TF False keras False mpl False sklearn False" in r.stdout, args
        assert seconds - base < 3.0, (args, seconds, base)  # the target is 1.5 s on an idle CPU
