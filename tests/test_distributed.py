"""Many workers on PostgreSQL: exact targets, lost workers retried, Ctrl-C, passwords."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import REPO, assert_killing_config_tried_twice, run_killing_workers

from search.cli import main
from search.errors import UserError
from search.record import end_of, lost_trials
from search.settings import Settings, create_or_resume
from search.storage import _with_password, open_storage, redact

TINY_SPACE = Path(__file__).parent / "spaces" / "tiny.toml"
PG = os.environ.get("CIFAR10_TEST_PG", "postgresql://root@127.0.0.1:5432")


@pytest.fixture
def pg_url():
    psycopg = pytest.importorskip("psycopg")
    name = f"cifar10_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{PG}/test", autocommit=True)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL is not reachable at {PG}: {e}")
    admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG}/{name}"
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
    )
    admin.execute(f'DROP DATABASE "{name}"')
    admin.close()


FAST_HEARTBEAT = {"CIFAR10_HEARTBEAT_S": "1", "CIFAR10_GRACE_S": "5"}


def cli(*args, env=None):
    return [sys.executable, "-m", "search.cli", *args]


def popen(args, env=None, **kw):
    return subprocess.Popen(
        args,
        cwd=REPO,
        env={**os.environ, **FAST_HEARTBEAT, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def start_args(name, url, data, trials, epochs=1):
    return [
        "start",
        "--study",
        name,
        "--storage",
        url,
        "--space",
        str(TINY_SPACE),
        "--trials",
        str(trials),
        "--epochs",
        str(epochs),
        "--train-size",
        "200",
        "--val-size",
        "100",
        "--data",
        str(data),
        "--no-plots",
        "--pruner",  # workers and their faults, not pausing (tests/test_promote.py)
        "hyperband",
    ]


def open_study(name, url):
    return optuna.load_study(study_name=name, storage=open_storage(url))


@pytest.mark.postgres
def test_three_workers_finish_exactly_the_target(pg_url, tiny_data):
    p = popen(cli(*start_args("three", pg_url, tiny_data, trials=9), "--jobs", "3"))
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    trials = open_study("three", pg_url).get_trials()
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 9
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert all(t.user_attrs["config"]["width1"] == 8 for t in done)
    assert len({t.user_attrs["worker"] for t in done}) == 3
    assert pg_url.split("@")[0] not in out or "***" not in out  # printed URL is redacted


def _wait_for(predicate, timeout=300, every=0.5):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


@pytest.mark.postgres
def test_a_killed_worker_is_detected_by_heartbeat_and_its_trial_retried(pg_url, tiny_data):
    s = Settings.from_options(
        space=str(TINY_SPACE), trials=4, epochs=4, train_size=200, val_size=100, pruner="hyperband"
    )
    os.environ.update(FAST_HEARTBEAT)
    try:
        create_or_resume("fault", pg_url, s, given=set())
    finally:
        for k in FAST_HEARTBEAT:
            os.environ.pop(k)
    workers = [
        popen(
            cli(
                "worker",
                "--study",
                "fault",
                "--storage",
                pg_url,
                "--data",
                str(tiny_data),
                "--worker-index",
                str(i),
            )
        )
        for i in range(2)
    ]
    victim = workers[1]

    def victim_running():
        for t in open_study("fault", pg_url).get_trials(states=(optuna.trial.TrialState.RUNNING,)):
            if t.user_attrs.get("pid") == victim.pid and t.user_attrs.get("config"):
                return t.number
        return None

    killed = _wait_for(victim_running)
    time.sleep(1.5)  # mid-trial: built and training
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    out, err = workers[0].communicate(timeout=600)
    assert workers[0].returncode == 0, err[-3000:]
    trials = open_study("fault", pg_url).get_trials()
    dead = trials[killed]
    assert dead.state.name == "FAIL"
    end, detail = end_of(dead, lost_trials(open_study("fault", pg_url)))
    assert end == "lost" and "no heartbeat" in detail
    retried = [t for t in trials if t.user_attrs.get("retry_of") == killed]
    assert len(retried) == 1 and retried[0].params == dead.params
    assert retried[0].state.name in ("COMPLETE", "PRUNED")
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 4


@pytest.mark.postgres
def test_a_config_that_kills_its_worker_is_tried_twice_then_left(pg_url, tiny_data):
    """PostgreSQL: heartbeats find the dead worker's trial, which is retried once; when the
    retry kills its worker too, it is failed and not queued again."""
    s = Settings.from_options(
        space=str(TINY_SPACE), trials=3, epochs=1, train_size=200, val_size=100
    )
    create_or_resume("killer", pg_url, s, given=set(), enqueue_seed=True)
    run_killing_workers("killer", pg_url, tiny_data, env=FAST_HEARTBEAT)
    assert_killing_config_tried_twice(open_study("killer", pg_url), 3, "no heartbeat")


@pytest.mark.postgres
def test_two_workers_racing_on_postgres_promote_a_segment_once(pg_url, monkeypatch):
    """The same forced race as on a journal file, the lock a PostgreSQL advisory lock (each
    thread opens the study through its own connection pool)."""
    from test_promote import race_to_promote

    race_to_promote(monkeypatch, url=pg_url)


@pytest.mark.postgres
def test_ctrl_c_then_start_again_finishes_and_keeps_finished_trials(pg_url, tiny_data):
    p = popen(cli(*start_args("sigint", pg_url, tiny_data, trials=3, epochs=3)))

    def one_done_one_running():
        ts = open_study("sigint", pg_url).get_trials() if _exists(pg_url, "sigint") else []
        done = [t for t in ts if t.state.name in ("COMPLETE", "PRUNED")]
        running = [t for t in ts if t.state.name == "RUNNING" and t.user_attrs.get("config")]
        return (done, running[0].number) if done and running else None

    done, cut = _wait_for(one_done_one_running)
    before = {t.number: (t.params, t.value) for t in done}
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    trial = open_study("sigint", pg_url).get_trials()[cut]
    assert trial.state.name == "FAIL" and trial.user_attrs["end"] == "interrupted"
    p = popen(cli(*start_args("sigint", pg_url, tiny_data, trials=3, epochs=3)))
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    trials = open_study("sigint", pg_url).get_trials()
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 3
    assert {n: (trials[n].params, trials[n].value) for n in before} == before


def _exists(url, name):
    try:
        storage = open_storage(url)
    except UserError:  # the worker is creating the schema at this moment: not yet
        return False
    return name in {s.study_name for s in optuna.get_all_study_summaries(storage, False)}


# --- passwords never on the command line, never printed ---------------------------------------


def test_a_password_in_the_url_is_refused_and_not_echoed(capsys):
    assert main(["status", "--study", "x", "--storage", "postgresql://u:s3cret@db.example/x"]) == 2
    err = capsys.readouterr().err
    assert "carries a password" in err and "s3cret" not in err
    assert "CIFAR10_STORAGE_PASSWORD" in err


def test_password_comes_from_the_environment_or_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR10_STORAGE_PASSWORD", "fromenv")
    assert ":fromenv@" in _with_password("postgresql://u@db/x")
    monkeypatch.delenv("CIFAR10_STORAGE_PASSWORD")
    (tmp_path / "pw").write_text("fromfile\n")
    monkeypatch.setenv("CIFAR10_STORAGE_PASSWORD_FILE", str(tmp_path / "pw"))
    assert ":fromfile@" in _with_password("postgresql://u@db/x")
    assert "fromfile" not in redact(_with_password("postgresql://u@db/x"))
    monkeypatch.setenv("CIFAR10_STORAGE_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(UserError, match="cannot read the password file"):
        _with_password("postgresql://u@db/x")


@pytest.mark.postgres
def test_password_file_works_against_the_server(pg_url, monkeypatch, tmp_path):
    (tmp_path / "pw").write_text("any")  # trust auth here: the password travels, unused
    monkeypatch.setenv("CIFAR10_STORAGE_PASSWORD_FILE", str(tmp_path / "pw"))
    storage = open_storage(pg_url)
    optuna.create_study(study_name="pw", storage=storage)
    assert _exists(pg_url, "pw")
