"""Shared fixtures: synthetic CIFAR-shaped data, the real image zip, isolated output folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# as the command line sets it (search.cli.common.configure_libraries), before TensorFlow loads
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

REPO = Path(__file__).resolve().parents[1]
REAL_ZIP = Path(os.environ.get("CIFAR10_REAL_ZIP", REPO.parent / "shared/data/cifar10-jpeg.zip"))


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One decode cache per test session: the real zip is decoded once, not once per test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def isolated_outputs(tmp_path, monkeypatch, session_cache):
    """Every test writes its results under its own tmp folder, never into the repo."""
    monkeypatch.setenv("CIFAR10_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("CIFAR10_CACHE", str(session_cache))
    monkeypatch.delenv("CIFAR10_DATA", raising=False)
    monkeypatch.delenv("CIFAR10_SEARCH_ACTIVE", raising=False)


def make_arrays(n_train: int = 200, n_test: int = 50, seed: int = 0):
    """Random images whose labels are learnable: each class has its own mean colour."""
    rng = np.random.default_rng(seed)

    def part(n):
        y = np.arange(n) % 10
        rng.shuffle(y)
        base = (y[:, None] * 23 + np.array([10, 80, 160])) % 256
        x = base[:, None, None, :] + rng.normal(0, 20, (n, 32, 32, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    return (*part(n_train), *part(n_test))


@pytest.fixture
def synthetic_npz(tmp_path) -> Path:
    x_train, y_train, x_test, y_test = make_arrays()
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """A 300-image train / 100-image test .npz that the tiny space's studies run on."""
    x, y, xt, yt = make_arrays(300, 100)
    path = tmp_path / "tiny-data.npz"
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return path


@pytest.fixture(scope="session")
def real_zip() -> Path:
    if not REAL_ZIP.exists():
        pytest.skip(f"the real CIFAR-10 zip is not at {REAL_ZIP} (set CIFAR10_REAL_ZIP)")
    return REAL_ZIP


def run_script(*args: str, env: dict | None = None, timeout: int = 600):
    """Run a repository script or module in a fresh Python process, from the repo root."""
    import subprocess

    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# A worker whose trainer kills its own process (SIGKILL: no clean-up, as the kernel's OOM killer
# does) for the tiny space's base config (learning rate 0.0035, trial 0) and stands in for
# training otherwise.
KILLING_WORKER = """
import os, signal, sys
from search.data import resolve_source
from search.training import RunResult
from search.worker import run_worker

def train(model, config, split, **kw):
    if config.learning_rate == 0.0035:
        os.kill(os.getpid(), signal.SIGKILL)
    return RunResult("complete", 1, 0.0, {"loss": [1.0], "val_accuracy": [0.5]})

name, url, data = sys.argv[1:]
run_worker(name, url or None, resolve_source(data), train=train)
"""


def run_killing_workers(name: str, url: str, data: Path, env: dict | None = None) -> list[int]:
    """Start such workers one after another until one finishes the study (exit 0); their exit
    codes. A study that retried the killing config forever would never finish."""
    codes = []
    for _ in range(6):
        r = run_script("-c", KILLING_WORKER, name, url, str(data), env=env)
        codes.append(r.returncode)
        if r.returncode == 0:
            return codes
        assert r.returncode == -9, r.stderr[-3000:]
    raise AssertionError(f"the study never finished: worker exit codes {codes}")


def assert_killing_config_tried_twice(study, target: int, reason: str) -> None:
    """The killing config ran exactly twice (the trial and its one retry), both lost with
    their reason, and the study still reached its target."""
    from search.record import End, end_of, lost_trials

    lost = lost_trials(study)
    trials = study.get_trials()
    killers = [t for t in trials if t.params.get("learning_rate") == 0.0035]
    assert len(killers) == 2, [(t.number, t.state.name) for t in trials]
    first, retry = killers
    assert retry.user_attrs["retry_of"] == first.number
    for t in killers:
        end, detail = end_of(t, lost)
        assert t.state.name == "FAIL" and end == End.LOST and reason in detail, (end, detail)
    assert "tried once more" in end_of(first, lost)[1]
    assert f"not retried again: it was the retry of trial {first.number}" in end_of(retry, lost)[1]
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == target
