"""Ablation of the fast recipe: each element off against on, equal epochs, validation split.

Every variant trains the same number of epochs on the same stratified train subset and is
judged on the same validation images (never the test set). Test-time augmentation (flip, and
flip plus 1-pixel shifts) costs no training, so it is read off the full recipe's own model.

Usage: ``python benchmarks/ablation.py [--train-size 20000] [--epochs 8] [--only NAME,...]
[--seeds 0,1] [--name ablation] [--resume]``. With ``--seeds``, each variant trains once per
seed (rows ``NAME (seed N)`` beyond the first seed); ``--resume`` keeps the rows an earlier run
with the same ``--name`` finished and trains only the rest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REAL_ZIP, train_and_score, write  # noqa: E402

# name: (what the element is, the config change that turns it off or on)
VARIANTS = {
    "full recipe": ("the fast preset as it is", {}),
    "whitening off": ("first conv randomly initialised and trained", {"whiten": False}),
    "label smoothing off": ("label_smoothing 0.2 -> 0", {"label_smoothing": 0.0}),
    "wsd schedule": (
        "one-cycle -> warmup-stable-decay, the last 20% decaying linearly to 0 (the schedule"
        " a promote study scores on cooldown branches)",
        {"schedule": "wsd", "cooldown": 0.2},
    ),
    "one-cycle off": (
        "one-cycle -> cosine decay, no warm-up",
        {"schedule": "cosine", "warmup": 0.0},
    ),
    "fast BatchNorm off": ("bn_momentum 0.6 -> 0.9", {"bn_momentum": 0.9}),
    "logit scale off": ("logit_scale 1/9 -> 1", {"logit_scale": 1.0}),
    "lookahead off": ("no slow weights", {"lookahead": False}),
    "bias lr scale off": ("BatchNorm offsets at the common learning rate", {"bias_lr_scale": 1.0}),
    "weight EMA instead of lookahead": (
        "ema 0.99, lookahead off",
        {"ema": 0.99, "lookahead": False},
    ),
    "cutout on": ("cutout 0 -> 0.5 (the preset runs without)", {"cutout": 0.5}),
    "dirac init off": ("3x3 convs randomly initialised, no partial identity", {"dirac": False}),
    "BatchNorm eps 1e-12": ("airbench's epsilon instead of Keras' 1e-3", {"bn_eps": 1e-12}),
    "offset weight decay off": (
        "weight decay on kernels only, BatchNorm offsets and biases exempt",
        {"decay_offsets": False},
    ),
    "alternating flip on": (
        "airbench's alternating flip (each image mirrored on every other epoch), not random",
        {"alt_flip": True},
    ),
    "whitening bias frozen after 3 epochs": ("as airbench", {"whiten_bias_epochs": 3}),
    "uniform 2-pixel translate": (
        "shifts uniform over -2..2 pixels as airbench's crops; the preset's rounded U(-2, 2)"
        " draws +-2 half as often",
        {"translate": 2.5 / 32},
    ),
    "airbench details": (
        "the three above and BatchNorm eps 1e-12 together",
        {"alt_flip": True, "whiten_bias_epochs": 3, "translate": 2.5 / 32, "bn_eps": 1e-12},
    ),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=str(REAL_ZIP))
    p.add_argument("--preset", default="fast")
    p.add_argument("--train-size", type=int, default=20000)
    p.add_argument("--val-size", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--only", default=",".join(VARIANTS))
    p.add_argument("--out", type=Path, default=None, help="folder (default results/benchmarks)")
    p.add_argument("--name", default="ablation", help="JSON file name, without .json")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    p.add_argument("--resume", action="store_true", help="keep the rows already written")
    a = p.parse_args()
    names = a.only.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    from search.config import preset
    from search.data import resolve_source, train_val

    split = train_val(
        resolve_source(a.data), val_size=a.val_size, train_size=a.train_size, split_seed=0
    )
    base = preset(a.preset).replace(epochs=a.epochs, train_size=a.train_size, val_size=a.val_size)
    seeds = [int(s) for s in a.seeds.split(",")]
    runs = [(name, seed) for seed in seeds for name in names]
    rows = previous_rows(a) if a.resume else {}
    for name, seed in runs:
        what, change = VARIANTS[name]
        key = name if seed == seeds[0] else f"{name} (seed {seed})"
        if key in rows:
            continue
        change = {**change, "seed": seed} if seed != base.seed else change
        row = rows[key] = {
            "what": what,
            "change": change,
            **train_and_score(base.replace(**change), split),
        }
        print(
            f"{key:<22} val {row['val_accuracy']:.4f}"
            f"  flip TTA {row['val_accuracy_flip_tta']:.4f}"
            f"  flip+shift TTA {row['val_accuracy_flip_shift_tta']:.4f}"
            f"  ({row['train_seconds']:.0f}s)",
            flush=True,
        )
        # written after every variant, so a stopped run keeps the variants it finished
        figures = {
            "preset": a.preset,
            "train_images": a.train_size,
            "val_images": a.val_size,
            "epochs": a.epochs,
            "finished": f"{len(rows)} of {len(runs)} runs",
            "variants": with_deltas(rows),
            "note": "one seed per variant; differences under ~0.5 points are noise",
        }
        write(a.name, figures, out=a.out)


def previous_rows(a) -> dict:
    """The trained rows of an earlier run under the same name (not the derived TTA rows),
    refused where it measured another task."""
    import json

    from benchmarks.common import OUT

    path = (a.out or OUT) / f"{a.name}.json"
    if not path.exists():
        return {}
    figures = json.loads(path.read_text())["figures"]
    task = {"preset": a.preset, "train_images": a.train_size, "val_images": a.val_size,
            "epochs": a.epochs}  # fmt: skip
    if {k: figures.get(k) for k in task} != task:
        sys.exit(f"{path} holds another task ({ {k: figures.get(k) for k in task} }); "
                 "choose another --name or drop --resume")  # fmt: skip
    return {k: v for k, v in figures["variants"].items() if "change" in v}


def with_deltas(rows: dict) -> dict:
    """The rows plus each one's difference to the full recipe and the TTA rows read off it."""
    full = rows.get("full recipe")
    if not full:
        return rows

    def full_of(name: str) -> dict:  # the full recipe of the same seed where there is one
        tail = name[name.rfind(" (seed ") :] if name.endswith(")") and " (seed " in name else ""
        return rows.get("full recipe" + tail, full)

    out = {
        name: {**row, "delta_vs_full": row["val_accuracy"] - full_of(name)["val_accuracy"]}
        for name, row in rows.items()
    }
    out["flip TTA off"] = {
        "what": "evaluation without the mirror image",
        "val_accuracy": full["val_accuracy"],
        "delta_vs_full_with_tta": full["val_accuracy"] - full["val_accuracy_flip_tta"],
    }
    out["shift TTA off"] = {
        "what": "flip TTA only, without the two 1-pixel shifted copies",
        "val_accuracy": full["val_accuracy_flip_tta"],
        "delta_vs_full_with_flip_shift_tta": full["val_accuracy_flip_tta"]
        - full["val_accuracy_flip_shift_tta"],
    }
    return out


if __name__ == "__main__":
    main()
