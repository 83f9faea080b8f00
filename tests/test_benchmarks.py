"""Benchmark scripts: what they do with their inputs, without running their measurements."""

from __future__ import annotations

import json

from conftest import run_script


def test_search_efficiency_refuses_a_work_folder_from_another_task(tmp_path):
    finished = tmp_path / "a_tpe_hyperband-s0.curve.json"
    other = {"space": "seed.toml", "train_images": 9, "val_images": 9, "epochs_per_trial": 1}
    finished.write_text(json.dumps({"task": other, "curve": [[1, 0.5]], "seconds": 1.0}))
    r = run_script(
        "benchmarks/search_efficiency.py", "--seeds", "1", "--methods", "a_tpe_hyperband",
        "--work", str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 1
    assert "was measured for task" in r.stderr and "new --work folder" in r.stderr
    assert "Traceback" not in r.stderr
    assert finished.exists()  # the finished run is kept
