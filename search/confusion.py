"""The confusion matrix of a test evaluation: a CSV of counts and two images (counts, and
normalised by true class). Matplotlib and pandas are imported when one is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search.data import CLASSES


def write_confusion(run: Path, cm: np.ndarray) -> None:
    """CSV of counts, and two PNGs: counts and row-normalised (recall per true class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame(cm, index=list(CLASSES), columns=list(CLASSES))
    table.to_csv(run / "confusion_matrix.csv", index_label="true \\ predicted")
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    for name, mat, fmt in (
        ("confusion_matrix.png", cm, "d"),
        ("confusion_matrix_normalized.png", norm, ".2f"),
    ):
        fig, ax = plt.subplots(figsize=(8, 7))
        im = ax.imshow(mat, cmap="Blues")
        fig.colorbar(im, ax=ax)
        ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
        ax.set_yticks(range(len(CLASSES)), CLASSES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("Confusion matrix" + (" (normalised by true class)" if fmt != "d" else ""))
        hi = mat.max() / 2
        for (i, j), v in np.ndenumerate(mat):
            colour = "white" if v > hi else "black"
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7, color=colour)
        fig.tight_layout()
        fig.savefig(run / name, dpi=100)
        plt.close(fig)
