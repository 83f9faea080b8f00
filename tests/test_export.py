"""Export to ONNX and LiteRT with a parity check, the exported model tested like the Keras one,
and ``predict`` on a user's own images (made here, one of them broken)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search import export, inference
from search.cli import main
from search.cli import runs as cli_runs
from search.data import CLASSES
from tests.conftest import make_arrays


def _needs(*modules: str):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(
        bool(missing), reason=f"{', '.join(missing)} not installed: pip install -e '.[export]'"
    )


ONNX = pytest.param("onnx", marks=_needs("tf2onnx", "onnx", "onnxruntime"))
LITERT = pytest.param("litert", marks=_needs("ai_edge_litert"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, Path]:
    """A fast-family model (GELU, the activation ONNX needed a rewrite for) trained one epoch
    on 250 synthetic images, 50 held out for validation; trained once for the module."""
    folder = tmp_path_factory.mktemp("trained")
    x, y, xt, yt = make_arrays(300, 100)
    data = folder / "tiny-data.npz"
    np.savez(data, x_train=x, y_train=y, x_test=xt, y_test=yt)
    out = folder / "run"
    widths = [f"--set=width{i}=16" for i in (1, 2, 3)]
    args = ["--preset", "fast", *widths, "--epochs", "1", "--val-size", "50", "--quiet"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR10_RESULTS", str(folder / "results"))
        mp.setenv("CIFAR10_CACHE", str(folder / "cache"))
        assert cli_runs.train_main([*args, "--data", str(data), "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["activation"] == "gelu"
    return out, data


@pytest.fixture
def tiny_run(trained_run, tmp_path) -> Path:
    """A copy of the trained run for one test to change."""
    shutil.copytree(trained_run[0], tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture
def tiny_data(trained_run) -> Path:
    return trained_run[1]


@pytest.mark.parametrize("fmt", [ONNX, LITERT])
def test_an_export_agrees_with_keras_and_keeps_the_raw_pixel_contract(fmt, tiny_run, tiny_data):
    rc = main(["export", "--run", str(tiny_run), "--format", fmt, "--data", str(tiny_data)])
    assert rc == 0
    path = tiny_run / inference.FILES[fmt]
    assert path.is_file() and not list(tiny_run.glob("*.partial*"))
    record = json.loads((tiny_run / "export.json").read_text())[fmt]
    assert record["images"] == 50 and record["agreement"] >= export.MIN_AGREEMENT
    assert record["max_logit_diff"] < 1e-3
    # uint8 pixels in 0-255, any batch size, logits out in CIFAR-10's order
    x = make_arrays(7, 0, seed=3)[0]
    want = inference.load(tiny_run / "model.keras").predict(x)
    for batch in (1, 7, 3):
        got = inference.load(path).predict(x, batch_size=batch)
        assert got.shape == (7, len(CLASSES))
        np.testing.assert_allclose(got, want, atol=1e-4)


@_needs("tf2onnx", "onnx", "onnxruntime")
def test_onnx_export_of_gelu_has_no_erfc_and_one_input(tiny_run, tiny_data):
    import onnx

    x = make_arrays(20, 0)[0]
    export.export_run(tiny_run, "onnx", x)
    graph = onnx.load(str(tiny_run / "model.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert "Erfc" not in ops and "Erf" in ops
    assert [i.name for i in graph.input] == ["image"]  # Normalization's constants are inside


@_needs("ai_edge_litert")
def test_an_export_that_fails_its_check_is_deleted(tiny_run, tiny_data, monkeypatch, capsys):
    def disagreeing(model, runner, images):
        return {"images": len(images), "agreement": 0.99, "max_logit_diff": 3.0}

    monkeypatch.setattr(export, "parity", disagreeing)
    rc = main(["export", "--run", str(tiny_run), "--format", "litert", "--data", str(tiny_data)])
    assert rc == 1
    assert "failed its check and was deleted" in capsys.readouterr().err
    assert not list(tiny_run.glob("model.*tflite")) and not (tiny_run / "export.json").exists()


@_needs("ai_edge_litert")
def test_the_test_script_scores_an_export_as_it_scores_keras(tiny_run, tiny_data, capsys):
    assert main(["export", "--run", str(tiny_run), "--format", "litert"]) == 0  # its own data
    for fmt in ("keras", "litert"):
        args = ["--run", str(tiny_run), "--format", fmt, "--tta", "--data", str(tiny_data)]
        assert cli_runs.test_main(args) == 0
    keras_m = json.loads((tiny_run / "test_metrics.json").read_text())
    lite_m = json.loads((tiny_run / "test_metrics_litert.json").read_text())
    assert lite_m["format"] == "litert" and lite_m["test_evaluations"] == 1
    for key in ("accuracy", "accuracy_tta_flip", "accuracy_tta_flip_shift"):
        assert abs(lite_m[key] - keras_m[key]) <= 0.01  # at most 1 of the 100 test images
    assert lite_m["params"] == keras_m["params"] and lite_m["latency_p50_ms"] > 0


def test_testing_a_format_that_was_not_exported_says_how(tiny_run, tiny_data, capsys):
    assert (
        cli_runs.test_main(["--run", str(tiny_run), "--format", "onnx", "--data", str(tiny_data)])
        == 2
    )
    assert "cifar10-search export --run" in capsys.readouterr().err


def _images(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    paths = {
        "wide.png": Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)),
        "gray.jpg": Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), "L"),
        "alpha.png": Image.fromarray(rng.integers(0, 256, (100, 100, 4), dtype=np.uint8)),
    }
    out = {}
    for name, img in paths.items():
        img.save(folder / name)
        out[name] = folder / name
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    out["broken.jpg"] = folder / "broken.jpg"
    out["missing.png"] = folder / "missing.png"
    return out


def test_predict_answers_every_image_and_names_those_it_cannot_read(tiny_run, tmp_path, capsys):
    images = _images(tmp_path)
    rc = main(["predict", "--run", str(tiny_run), "--json", *map(str, images.values())])
    assert rc == 1  # some failed
    rows = {Path(r["image"]).name: r for r in json.loads(capsys.readouterr().out)["images"]}
    assert list(rows) == list(images)  # every image, in the order given
    for name in ("wide.png", "gray.jpg", "alpha.png"):
        top = rows[name]["top"]
        probs = [t["probability"] for t in top]
        assert len(top) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0001
        assert {t["class"] for t in top} <= set(CLASSES)
    assert rows["wide.png"]["changes"] == "resized from 64x48, centre-cropped"
    assert rows["gray.jpg"]["changes"] == "converted from L to RGB"
    assert rows["alpha.png"]["changes"] == "resized from 100x100, converted from RGBA to RGB"
    assert "not an image" in rows["broken.jpg"]["error"]
    assert "no such file" in rows["missing.png"]["error"]
    # the answer is the model's on the converted pixels
    gray = np.repeat(np.asarray(Image.open(images["gray.jpg"]))[..., None], 3, axis=2)
    logits = inference.load(tiny_run / "model.keras").predict(gray[None])
    assert rows["gray.jpg"]["top"][0]["class"] == CLASSES[int(logits.argmax())]


def test_predict_prints_a_table(tiny_run, tmp_path, capsys):
    images = _images(tmp_path)
    assert main(["predict", "--model", str(tiny_run / "model.keras"), str(images["wide.png"])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"model {tiny_run / 'model.keras'}" and len(lines) == 2
    assert lines[1].startswith(str(images["wide.png"])) and "(resized from 64x48" in lines[1]


def test_a_model_file_that_needs_unsafe_loading_is_refused(tmp_path, capsys):
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)  # Python code inside the file
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    model.save(tmp_path / "lambda.keras")
    image = _images(tmp_path)["wide.png"]
    assert main(["predict", "--model", str(tmp_path / "lambda.keras"), str(image)]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "safe mode" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "m.onnx"], "no such model file"),
        (["--model", "model.h5"], "not a model file this tool runs"),
        (["--model", "m.keras", "--top", "0"], "--top takes 1 to 10"),
    ],
)
def test_bad_predict_arguments_are_one_line(args, message, tmp_path, capsys):
    (tmp_path / "m.keras").write_text("")
    image = _images(tmp_path)["wide.png"]
    rc = main(["predict", *[a.replace("m.", f"{tmp_path}/m.") for a in args], str(image)])
    assert rc == 2 and message in capsys.readouterr().err


@_needs("onnxruntime")
def test_the_shipped_onnx_model_is_the_shipped_keras_model():
    run = Path(__file__).resolve().parents[1] / "results/reference/fast-decay-12"
    x = make_arrays(20, 0, seed=5)[0]
    want = inference.load(run / "model.keras").predict(x)
    got = inference.load(run / "model.onnx").predict(x)
    np.testing.assert_allclose(got, want, atol=1e-4)
    record = json.loads((run / "export.json").read_text())["onnx"]
    assert record["agreement"] == 1.0 and record["bytes"] == (run / "model.onnx").stat().st_size
