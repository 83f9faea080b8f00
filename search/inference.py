"""Running a trained model, whatever its format: ``model.keras``, ``model.onnx`` (ONNX Runtime)
or ``model.tflite`` (the LiteRT interpreter), and preparing a user's own images for it.

Every format keeps the raw-pixel contract of :mod:`search.models`: ``(N, 32, 32, 3)`` RGB in
0-255 in, logits out, in CIFAR-10's label order. A :class:`Runner` has ``predict(x,
batch_size=..., verbose=...)`` like a Keras model, so the TTA scoring of :mod:`search.evaluate`
takes any of them. Only the runtime a format needs is imported: ONNX and LiteRT files run
without TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search import env
from search.data import CLASSES
from search.errors import UserError
from search.timing import compiled_inference, intra_op_threads, usable_cores

# format name -> file name beside model.keras, and the extra that runs it
FILES = {"keras": "model.keras", "onnx": "model.onnx", "litert": "model.tflite"}
SUFFIXES = {".keras": "keras", ".onnx": "onnx", ".tflite": "litert"}
INSTALL = "pip install -e '.[export]'"


def format_of(path: Path) -> str:
    """The format of a model file, by its suffix; a wrong suffix or a missing file is refused."""
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{path}: not a model file this tool runs (a .keras, .onnx or .tflite file)."
        )
    if not path.is_file():
        raise UserError(f"{path}: no such model file.")
    return fmt


class Runner:
    """One model file, ready to classify: ``predict(x) -> logits`` for a uint8 or float
    batch of raw pixels; ``one(x)`` runs a batch of one with the least overhead."""

    def __init__(self, path: Path, fmt: str, one: Callable[[np.ndarray], np.ndarray], **about):
        self.path, self.format, self.one = path, fmt, one
        self.model = about.get("model")  # the Keras model, for a .keras file
        self.threads = about.get("threads")  # the runtime's intra-op threads, where it has them

    def predict(self, x: np.ndarray, *, batch_size: int = 500, verbose: int = 0) -> np.ndarray:
        x = np.asarray(x, np.float32)
        parts = [self.one(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, len(CLASSES)), np.float32)


def load_keras(path: Path):
    """A ``.keras`` file loaded with Keras' safe mode on: a file that needs unsafe loading (it
    carries Python code, as a Lambda layer does) is refused with the reason."""
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as e:
        if "safe_mode" in str(e) or "unsafe" in str(e).lower():
            raise UserError(
                f"{path}: refused: the file can only be loaded with Keras' safe mode off, "
                f"since it carries Python code that would run on loading ({str(e).splitlines()[0]}"
                "). Models this tool trains never need that; load such a file only if you trust "
                "where it came from, and not through this tool."
            ) from None
        raise UserError(f"{path}: not a Keras model this tool can load: {e}") from None


def load(path: Path | str, *, threads: int | None = None) -> Runner:
    """The runner of a model file, by its suffix. ``threads``: the runtime's intra-op threads
    (ONNX Runtime and LiteRT; default: every core this process may use)."""
    path = Path(path)
    fmt = format_of(path)
    threads = threads or usable_cores()
    if fmt == "keras":
        model = load_keras(path)
        fn = compiled_inference(model)
        return Runner(path, fmt, fn, model=model, threads=intra_op_threads())
    if fmt == "onnx":
        return _onnx_runner(path, threads)
    return _litert_runner(path, threads)


def _needs(module: str, fmt: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"running {fmt} models needs the package {module.split('.')[0]}: {INSTALL}"
        ) from None


def _onnx_runner(path: Path, threads: int | None) -> Runner:
    ort = _needs("onnxruntime", "onnx")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types are not importable by name
        raise UserError(f"{path}: ONNX Runtime cannot load it: {e}") from None
    name = session.get_inputs()[0].name
    return Runner(path, "onnx", lambda x: session.run(None, {name: _f32(x)})[0], threads=threads)


def _litert_runner(path: Path, threads: int | None) -> Runner:
    interpreter_module = _needs("ai_edge_litert.interpreter", "litert")
    try:
        it = interpreter_module.Interpreter(model_path=str(path), num_threads=threads)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"{path}: the LiteRT interpreter cannot load it: {e}") from None
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    shape = [None]

    def run(x: np.ndarray) -> np.ndarray:
        x = _f32(x)
        if shape[0] != x.shape:  # the batch size is a tensor shape here: resize on change
            with native_stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
                it.resize_tensor_input(inp, x.shape)
                it.allocate_tensors()
            shape[0] = x.shape
        it.set_tensor(inp, x)
        it.invoke()
        return it.get_tensor(out).copy()

    return Runner(path, "litert", run, threads=threads)


@contextlib.contextmanager
def native_stderr_silenced():
    """Send the process's stderr (file descriptor 2, where native libraries write their start-up
    lines) to /dev/null for a while; ``CIFAR10_VERBOSE=1`` keeps it."""
    if env.text("CIFAR10_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass(frozen=True)
class Image32:
    """A user's image as the model takes it, and what was done to get it there."""

    path: Path
    pixels: np.ndarray  # (32, 32, 3) uint8
    original_size: tuple[int, int]  # (width, height)
    original_mode: str

    @property
    def changes(self) -> str:
        w, h = self.original_size
        out = []
        if (w, h) != (32, 32):
            out.append(f"resized from {w}x{h}" + (", centre-cropped" if w != h else ""))
        if self.original_mode != "RGB":
            out.append(f"converted from {self.original_mode} to RGB")
        return ", ".join(out)


def read_image(path: Path | str) -> Image32:
    """Any image Pillow reads (PNG, JPEG, ...; grayscale, palette, RGBA) as 32x32 RGB: a
    non-square image is centre-cropped to a square, then resized (Lanczos); transparency is
    laid on white. A missing or unreadable file raises :class:`UserError` naming it."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode, (w, h) = img.mode, img.size
            if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.new("RGB", img.size, "white")
                img.paste(rgba, mask=rgba.getchannel("A"))
            img = img.convert("RGB")
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side))
            if img.size != (32, 32):
                img = img.resize((32, 32), Image.Resampling.LANCZOS)
            pixels = np.asarray(img, np.uint8)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not an image.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UserError(f"{path}: not an image Pillow can read ({e}).") from None
    return Image32(path, pixels, (w, h), mode)


def top_k(logits: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` likeliest classes of one image's logits, with their softmax probabilities."""
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p)[:k]
    return [(CLASSES[i], float(p[i])) for i in order]
