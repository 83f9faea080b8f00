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

# the TTA levels as tta_logits keys them, in its order, and how reports name them; the
# metrics' TTA accuracies by level, and the (key, name) pairs reports print
TTA_NAMES = {"plain": "plain", "flip": "flip", "flip_shift": "flip+shift"}
TTA_KEYS = {"flip": "accuracy_tta_flip", "flip_shift": "accuracy_tta_flip_shift"}
TTA_REPORTS = tuple((key, TTA_NAMES[level]) for level, key in TTA_KEYS.items())


def _views(x: np.ndarray, level: int) -> list[np.ndarray]:
    """The images TTA up to ``level`` runs, in order: the image, its mirror, then each of two
    copies shifted one pixel up-left and down-right (reflect-padded) and its mirror."""
    views = [x]
    if level >= 1:
        views.append(x[:, :, ::-1])
    if level >= 2:
        h, w = x.shape[1:3]
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        for shifted in (padded[:, :h, :w], padded[:, 2 : h + 2, 2 : w + 2]):
            views += [shifted, shifted[:, :, ::-1]]
    return views


def tta_logits(model: Any, x: np.ndarray, *, level: int = 2, batch_size: int = 500):
    """Logits of ``model`` on ``x`` in inference mode at each test-time augmentation level up
    to ``level`` (airbench's tta_level 0, 1, 2), keyed "plain", "flip" and "flip_shift",
    from one set of forward passes (6 for level 2).

    "flip" is the mean of the logits of each image and its mirror image. "flip_shift" is
    airbench's level 2: half of that, half the same flip mean over two copies shifted one
    pixel up-left and down-right (reflect-padded).
    """
    p = [model.predict(v, batch_size=batch_size, verbose=0) for v in _views(x, level)]
    out = {"plain": p[0]}
    if level >= 1:
        out["flip"] = (p[0] + p[1]) / 2
    if level >= 2:
        shifted = (p[2] + p[3]) / 2 + (p[4] + p[5]) / 2
        out["flip_shift"] = (out["flip"] + shifted / 2) / 2
    return out


def tta_copies(x: np.ndarray, level: int) -> np.ndarray:
    """The images :func:`tta_logits` runs at ``level``, as one batch (1, 2 or 6 per image):
    what one TTA prediction costs, for its latency."""
    return np.concatenate(_views(x, level))


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
