"""What every benchmark writes beside its figures: machine, threads, versions, command."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from search.cli.common import fast_kernels
from search.provenance import provenance
from search.timing import intra_op_threads

fast_kernels()  # every benchmark measures the kernels the command line runs on

OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks"
REAL_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.zip"


def write(name: str, figures: dict, *, out: Path | None = None) -> Path:
    path = (out or OUT) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "threads": intra_op_threads(),
        **provenance(),
        "figures": figures,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def train_and_score(config, split, *, verbose: bool = False) -> dict:
    """Train ``config`` on ``split`` and score the trained model on the validation images
    (never the test set) without and with test-time augmentation."""
    from search.evaluate import tta_scores
    from search.models import build_model
    from search.training import train

    model = build_model(config, whiten_images=split.x_train)
    r = train(model, config, split, verbose=verbose)
    plain, flip, flip_shift = (
        s["accuracy"] for s in tta_scores(model, split.x_val, split.y_val, level=2).values()
    )
    return {
        "val_accuracy": plain,
        "val_accuracy_flip_tta": flip,
        "val_accuracy_flip_shift_tta": flip_shift,
        "train_seconds": r.seconds,
        "status": r.status,
        "curve": r.history["val_accuracy"],
        "params": model.count_params(),
    }
