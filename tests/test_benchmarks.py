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


@pytest.mark.slow
def test_ablation_writes_its_variants_and_their_deltas_to_the_full_recipe(tmp_path, synthetic_npz):
    r = run_script(
        "benchmarks/ablation.py", "--data", str(synthetic_npz), "--train-size", "100",
        "--val-size", "50", "--epochs", "1", "--only", "full recipe,lookahead off",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    figures = json.loads((tmp_path / "ablation.json").read_text())["figures"]
    assert figures["finished"] == "2 of 2 variants"
    rows = figures["variants"]
    assert set(rows) == {"full recipe", "lookahead off", "flip TTA off", "shift TTA off"}
    assert rows["full recipe"]["delta_vs_full"] == 0
    off = rows["lookahead off"]
    assert off["change"] == {"lookahead": False}
    assert off["delta_vs_full"] == off["val_accuracy"] - rows["full recipe"]["val_accuracy"]
    assert len(off["curve"]) == 1


def test_ablation_refuses_an_unknown_variant_before_loading_any_data(tmp_path):
    r = run_script(
        "benchmarks/ablation.py", "--data", str(tmp_path / "absent.zip"),
        "--only", "full recipe,whitening of", "--out", str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 2
    assert "unknown variant(s) ['whitening of']" in r.stderr and "whitening off" in r.stderr
    assert "absent.zip" not in r.stderr  # it stopped before reading --data
    assert not (tmp_path / "ablation.json").exists()
