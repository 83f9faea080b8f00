"""Scoring a trained model: test-time augmentation logits, accuracy, per-class accuracy and
the confusion matrix, and the counter of how often a model has met the test set.

Used by the run folder's one-time test (``runs``), the retrain's test (``final``) and the
benchmarks (on validation images). To add a TTA level: a branch in :func:`tta_logits` and its
name in :data:`TTA_REPORTS`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from search.data import CLASSES

# the metrics' TTA accuracies, the tta_logits level behind each, and how reports name them
TTA_REPORTS = (("accuracy_tta_flip", "flip"), ("accuracy_tta_flip_shift", "flip+shift"))
TTA_KEYS = {"flip": "accuracy_tta_flip", "flip_shift": "accuracy_tta_flip_shift"}


def tta_logits(model: Any, x: np.ndarray, *, level: int = 2, batch_size: int = 500):
    """Logits of ``model`` on ``x`` in inference mode at each test-time augmentation level up
    to ``level`` (airbench's tta_level 0, 1, 2), keyed "plain", "flip" and "flip_shift",
    from one set of forward passes (6 for level 2).

    "flip" is the mean of the logits of each image and its mirror image. "flip_shift" is
    airbench's level 2: half of that, half the same flip mean over two copies shifted one
    pixel up-left and down-right (reflect-padded).
    """

    def predict(images: np.ndarray) -> np.ndarray:
        return model.predict(images, batch_size=batch_size, verbose=0)

    def flip_mean(images: np.ndarray, plain: np.ndarray | None = None) -> np.ndarray:
        plain = predict(images) if plain is None else plain
        return (plain + predict(images[:, :, ::-1])) / 2

    out = {"plain": predict(x)}
    if level >= 1:
        out["flip"] = flip_mean(x, out["plain"])
    if level >= 2:
        h, w = x.shape[1:3]
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        shifted = flip_mean(padded[:, :h, :w]) + flip_mean(padded[:, 2 : h + 2, 2 : w + 2])
        out["flip_shift"] = (out["flip"] + shifted / 2) / 2
    return out


def tta_copies(x: np.ndarray, level: int) -> np.ndarray:
    """The images :func:`tta_logits` runs at ``level``, as one batch (1, 2 or 6 per image):
    what one TTA prediction costs, for its latency."""
    copies = [x]
    if level >= 1:
        copies.append(x[:, :, ::-1])
    if level >= 2:
        h, w = x.shape[1:3]
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        for shifted in (padded[:, :h, :w], padded[:, 2 : h + 2, 2 : w + 2]):
            copies += [shifted, shifted[:, :, ::-1]]
    return np.concatenate(copies)


def tta_level(config: Any, tta: bool | None) -> int:
    """The TTA level to report: what the config trains for (shift means flip and shift), or
    with ``tta`` True both, False neither."""
    if tta is None:
        return 2 if config.tta_shift else int(config.tta_flip)
    return 2 if tta else 0


def scores(logits: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, per-class accuracy and the confusion matrix (rows: true class)."""
    pred = logits.argmax(axis=1)
    cm = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    np.add.at(cm, (y, pred), 1)
    per_class = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
    return {
        "accuracy": float((pred == y).mean()),
        "per_class_accuracy": {c: float(a) for c, a in zip(CLASSES, per_class)},
        "confusion_matrix": cm.tolist(),
    }


def tta_scores(model: Any, x: np.ndarray, y: np.ndarray, *, level: int) -> dict[str, dict]:
    """:func:`scores` at each TTA level up to ``level``, keyed as :func:`tta_logits`."""
    return {name: scores(v, y) for name, v in tta_logits(model, x, level=level).items()}


def next_evaluation(metrics_file: Path) -> int:
    """This look at the test set's number: one more than the metrics file already counts."""
    if metrics_file.exists():
        return 1 + int(json.loads(metrics_file.read_text()).get("test_evaluations", 0))
    return 1
