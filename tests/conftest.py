"""Shared fixtures: synthetic CIFAR-shaped data, the real image zip, isolated output folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
