"""Progress bars in a terminal, today's plain lines everywhere else."""

from __future__ import annotations

import re
import sys

import pytest

from search import progress
from search.cli import runs as cli_runs
from search.data import resolve_source
from search.worker import run_worker
from tests.test_study import no_training, settings

BAR = re.compile(r"\d+/\d+ \[")  # tqdm's "3/12 [" counter


def _train_tiny(tiny_data, tmp_path) -> int:
    args = ["--preset", "fast", "--set=width1=8", "--set=width2=8", "--set=width3=8"]
    args += ["--epochs", "2", "--train-size", "200", "--val-size", "50"]
    return cli_runs.train_main([*args, "--data", str(tiny_data), "--out", str(tmp_path / "r")])


def test_without_a_terminal_training_prints_plain_lines_only(tiny_data, tmp_path, capsys):
    assert not sys.stderr.isatty() and not progress.wanted()
    assert _train_tiny(tiny_data, tmp_path) == 0
    out, err = capsys.readouterr()
    assert re.search(r"^epoch 1/2 .*img/s\)$", out, re.M) and re.search(r"^epoch 2/2 ", out, re.M)
    assert not BAR.search(err) and "\r" not in out + err


def test_bars_over_epochs_and_batches_with_the_lines_above_them(
    tiny_data, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("CIFAR10_PROGRESS", "1")  # as in a terminal
    assert _train_tiny(tiny_data, tmp_path) == 0
    out, err = capsys.readouterr()
    assert re.search(r"^epoch 2/2 ", out, re.M)  # the per-epoch lines still print
    assert re.search(r"epochs: +100%.*2/2", err)  # the run's bar, finished
    assert re.search(r"epoch 1/2: .*1/1 \[.*img/s", err)  # the batch bar: one batch of 200
    assert "loss" in err


@pytest.mark.parametrize("forced", ["1", None])
def test_a_study_shows_a_bar_over_its_target_only_in_a_terminal(
    forced, tiny_data, capsys, monkeypatch
):
    from search.settings import create_or_resume

    if forced:
        monkeypatch.setenv("CIFAR10_PROGRESS", forced)
    create_or_resume("bars", None, settings(trials=2, epochs=1), given=set(), enqueue_seed=True)
    run_worker("bars", None, resolve_source(tiny_data), train=no_training)
    out, err = capsys.readouterr()
    assert len(re.findall(r"^trial +\d+ ", out, re.M)) == 2  # one line per trial either way
    if forced:
        assert re.search(r"study bars: +100%.*2/2 .*best 0\.5000", err)
    else:
        assert "study bars" not in err and not BAR.search(err)


def test_progress_can_be_forced_off_in_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress.wanted()
    monkeypatch.setenv("CIFAR10_PROGRESS", "0")
    assert not progress.wanted()


def test_quiet_start_prints_the_summary_only(tiny_data, capsys, monkeypatch):
    from search.cli import main

    monkeypatch.setenv("CIFAR10_PROGRESS", "1")
    args = ["start", "--study", "hush", "--space", "tests/spaces/tiny.toml", "--trials", "2"]
    args += ["--epochs", "1", "--train-size", "200", "--val-size", "100", "--no-plots"]
    monkeypatch.setattr("search.objective._default_train", no_training)
    assert main([*args, "--quiet", "--data", str(tiny_data)]) == 0
    out, err = capsys.readouterr()
    assert not re.search(r"^trial +\d+ ", out, re.M) and not BAR.search(err)
    assert "study hush: 2 trials (2 complete)" in out and "best trial #" in out  # the summary
    assert main([*args, "--trials", "3", "--data", str(tiny_data)]) == 0  # not quiet: lines
    assert len(re.findall(r"^trial +\d+ ", capsys.readouterr().out, re.M)) == 1
