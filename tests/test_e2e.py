"""End to end on a small slice of the real images: the two scripts, as a user runs them."""

from __future__ import annotations

import json

import pytest
from conftest import run_script

pytestmark = pytest.mark.slow


def test_train_one_epoch_then_test(real_zip, tmp_path):
    run = tmp_path / "run"
    r = run_script(
        "cifar10_train.py",
        "--data",
        str(real_zip),
        "--epochs",
        "1",
        "--train-size",
        "1000",
        "--val-size",
        "500",
        "--out",
        str(run),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert str(run) in r.stdout.splitlines()[-1]
    for name in ("model.keras", "config.json", "history.csv", "budget.json", "train.json"):
        assert (run / name).exists(), name
    train = json.loads((run / "train.json").read_text())
    assert train["train_images"] == 1000 and train["val_images"] == 500 and train["epochs"] == 1

    r = run_script("cifar10_test.py", "--run", str(run), "--data", str(real_zip))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "test accuracy" in r.stdout
    m = json.loads((run / "test_metrics.json").read_text())
    assert m["test_images"] == 10_000 and 0.0 <= m["accuracy"] <= 1.0
    assert set(m["per_class_accuracy"]) == {
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    }
    assert sum(map(sum, m["confusion_matrix"])) == 10_000
    assert m["params"] == 405_354 and m["latency_p50_ms"] > 0
    assert (
        m["data_checksum_sha256"]
        == (real_zip.parent / "cifar10-jpeg.zip.sha256").read_text().split()[0]
    )
    for name in ("confusion_matrix.png", "confusion_matrix_normalized.png", "confusion_matrix.csv"):
        assert (run / name).stat().st_size > 1000 or name.endswith(".csv")


def test_bad_data_path_is_one_clear_line(tmp_path):
    r = run_script("cifar10_train.py", "--data", str(tmp_path / "missing.zip"), "--epochs", "1")
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: Data path") and "Traceback" not in r.stderr


def test_test_script_without_runs_says_what_to_do(tmp_path):
    r = run_script("cifar10_test.py", env={"CIFAR10_RESULTS": str(tmp_path / "empty")})
    assert r.returncode == 2 and "no trained run found" in r.stderr and "Traceback" not in r.stderr


def test_train_refuses_to_overwrite_a_finished_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.json").write_text("{}")
    (run / "model.keras").write_text("precious")
    r = run_script(
        "-c",
        "import sys; from search.cli import train_main; sys.exit(train_main(['--out', sys.argv[1]]))",
        str(run),
        env={"CIFAR10_DATA": ""},
    )
    assert r.returncode == 2 and "holds a finished run" in r.stderr
    assert (run / "model.keras").read_text() == "precious"


def test_committed_reference_model_stands_alone(real_zip):
    """results/reference/ ships a trained model, as the historical project did: it loads in
    safe mode, keeps to the budgets, and is the trained one (it knows its training images)."""
    import keras
    from conftest import REPO

    from search.config import Config
    from search.data import resolve_source, train_val

    run = REPO / "results/reference/fast-decay-12"
    assert (run / "model.keras").stat().st_size < 5_000_000
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert model.count_params() < 1_000_000
    config = Config.from_json(run / "config.json")
    assert config.val_size == 0 and config.epochs <= 12
    split = train_val(resolve_source(real_zip), val_size=1000, train_size=1000, split_seed=3)
    acc = (model.predict(split.x_train, verbose=0).argmax(1) == split.y_train).mean()
    assert acc > 0.85, acc
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert metrics["accuracy"] > 0.85 and metrics["test_images"] == 10_000
