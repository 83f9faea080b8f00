"""Benchmark scripts: what they do with their inputs, without running their measurements."""

from __future__ import annotations

import json

import pytest
from conftest import run_script

OTHER_TASK = {"space": "seed.toml", "train_images": 9, "val_images": 9, "epochs_per_trial": 1}


@pytest.mark.parametrize(
    "content",
    [{"task": OTHER_TASK, "curve": [[1, 0.5]], "seconds": 1.0}, [[1, 0.5]]],
    ids=["another task", "older file without a task"],
)
def test_search_efficiency_refuses_a_work_folder_from_another_task(tmp_path, content):
    finished = tmp_path / "a_tpe_hyperband-s0.curve.json"
    finished.write_text(json.dumps(content))
    r = run_script(
        "benchmarks/search_efficiency.py", "--seeds", "1", "--methods", "a_tpe_hyperband",
        "--work", str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 1
    assert "was measured for task" in r.stderr and "new --work folder" in r.stderr
    assert "Traceback" not in r.stderr
    assert finished.exists()  # the finished run is kept
