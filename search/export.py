"""Exporting a run's ``model.keras`` to ONNX or LiteRT, with proof before the file is kept.

Keras' own ``model.export(format=...)`` writes the file (for ONNX on the TensorFlow backend it
goes through tf2onnx). Then the exported model and the Keras model classify the same images
(validation images, never the test split): the file is kept only if their classes agree on at
least :data:`MIN_AGREEMENT` of them; otherwise it is deleted and the reason said. Each kept
export is recorded in the run's ``export.json``.

One conversion of our own: TensorFlow computes exact GELU with ``Erfc``, which tf2onnx writes as
an ONNX ``Erfc`` node, an op ONNX does not define (ONNX Runtime refuses the file: "No Op
registered for Erfc"). :func:`replace_erfc` rewrites each as ``1 - Erf(x)``, the same function
with standard ops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from search.config import Config
from search.data import split_for
from search.errors import UserError
from search.inference import FILES, INSTALL, load, load_keras

MIN_AGREEMENT = 0.999  # share of images on which the exported model's class must match Keras'
FORMATS = ("onnx", "litert")


class ExportError(UserError):
    """An export failed or failed its check; no file was kept."""


def export_run(run: Path, fmt: str, images: np.ndarray, *, about: str = "") -> dict:
    """Export ``run/model.keras`` to ``fmt`` beside it, check it on ``images`` and record it.
    Returns the check's figures; raises :class:`ExportError` (and keeps no file) on failure."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}.")
    target = run / FILES[fmt]
    partial = target.with_name(f"{target.stem}.partial{target.suffix}")
    model = load_keras(run / "model.keras")
    model(np.zeros((1, 32, 32, 3), np.float32))  # a model loaded from disk exports once called
    _constants_as_arrays(model)
    t0 = time.perf_counter()
    try:
        _export(model, partial, fmt)
        seconds = time.perf_counter() - t0
        check = parity(model, load(partial), images)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if check["agreement"] < MIN_AGREEMENT:
        partial.unlink(missing_ok=True)
        raise ExportError(
            f"{fmt} export of {run / 'model.keras'} failed its check and was deleted: its "
            f"classes agree with Keras' on {check['agreement']:.2%} of {check['images']:,} "
            f"images (at least {MIN_AGREEMENT:.1%} needed); largest logit difference "
            f"{check['max_logit_diff']:.3g}."
        )
    partial.replace(target)
    record = {
        "file": target.name,
        "bytes": target.stat().st_size,
        "export_seconds": round(seconds, 2),
        **check,
        "checked_on": about,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": _versions(),
    }
    log = run / "export.json"
    records = json.loads(log.read_text()) if log.exists() else {}
    records[fmt] = record
    log.write_text(json.dumps(records, indent=2) + "\n")
    return record


def check_images(run: Path, source) -> tuple[np.ndarray, str]:
    """The images an export is checked on, and what they are: the run's validation images; for
    a model trained on all 50,000 (a retrain), the default validation split's images, which it
    trained on. Never the test split."""
    config = Config.from_json(run / "config.json")
    if config.val_size:
        x = split_for(config, source).x_val
        return x, f"the run's {len(x):,} validation images"
    default = Config().val_size
    x = split_for(config.replace(val_size=default, train_size=None), source).x_val
    return x, f"the default validation split's {len(x):,} images (the model trained on all 50,000)"


def parity(model, runner, images: np.ndarray) -> dict:
    """How the exported model's logits and classes compare with the Keras model's."""
    ref = model.predict(images, batch_size=500, verbose=0)
    got = runner.predict(images, batch_size=500)
    return {
        "images": len(images),
        "agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
        "max_logit_diff": float(np.abs(ref - got).max()),
    }


def _export(model, path: Path, fmt: str) -> None:
    needs = {"onnx": ("tf2onnx", "onnx"), "litert": ()}[fmt]
    for module in needs:
        try:
            __import__(module)
        except ImportError:
            raise ExportError(f"exporting to {fmt} needs the package {module}: {INSTALL}") from None
    with _quiet_converters(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.export(str(path), format=fmt, verbose=False)
        except Exception as e:
            raise ExportError(f"Keras could not export the model to {fmt}: {e}") from None
    if fmt == "onnx":
        replace_erfc(path)


def _constants_as_arrays(model) -> None:
    """Normalization keeps its mean and variance as tensors made when it was built; tf2onnx
    turns such captured tensors into extra graph inputs that a caller would have to feed. As
    NumPy arrays they are traced into the graph as constants (the values are unchanged)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization) and layer.mean is not None:
            layer.mean = np.asarray(layer.mean)
            layer.variance = np.asarray(layer.variance)


@contextlib.contextmanager
def _quiet_converters():
    """tf2onnx logs each op it cannot map ("Erfc is not supported") before we map it."""
    loggers = [logging.getLogger(n) for n in ("tf2onnx", "tensorflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def replace_erfc(path: Path) -> int:
    """Rewrite each ONNX ``Erfc(x)`` node of the file as ``Sub(1, Erf(x))``; returns how many."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    one = "erfc_rewrite_one"
    nodes, count = [], 0
    for node in model.graph.node:
        if node.op_type == "Erfc" and node.domain in ("", "ai.onnx"):
            erf = f"{node.output[0]}_erf"
            nodes.append(helper.make_node("Erf", list(node.input), [erf], name=f"{node.name}_erf"))
            nodes.append(
                helper.make_node("Sub", [one, erf], list(node.output), name=f"{node.name}_1m")
            )
            count += 1
        else:
            nodes.append(node)
    if count:
        model.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return count


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "keras",
        "tensorflow-cpu",
        "tensorflow",
        "tf2onnx",
        "onnx",
        "onnxruntime",
        "ai-edge-litert",
    ):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out
