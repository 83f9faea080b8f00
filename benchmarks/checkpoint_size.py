"""Checkpoint size of a paused --pruner promote trial, and the peak disk use of a study.

A paused segment keeps its whole training state (weights, optimizer slots and step, lookahead's
slow copy) as one zip artifact. At most ``trials // eta`` checkpoints per rung below the top can
ever be promoted (the others are deleted at once), plus one per running worker, so a study's
peak is bounded by that count times the largest config's size. Measured on the fast preset
and the largest config of ``spaces/fast.toml`` (tiny made-up images: size does not depend on
them). Usage: ``python benchmarks/checkpoint_size.py [--trials 100] [--eta 3] [--epochs 6]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks.common import write  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--first-rung", type=int, default=1)
    a = p.parse_args()
    from conftest import make_arrays

    from search.config import preset
    from search.data import Split
    from search.models import build_model
    from search.schedulers.asha import rungs
    from search.space import load_space
    from search.training import train

    x, y, xv, yv = make_arrays(512, 64)
    split = Split(x, y, xv, yv)
    space = {q.name: q for q in load_space(ROOT / "spaces" / "fast.toml").params}
    largest = {k: space[k].high for k in ("width1", "width2", "width3", "depth")}
    sizes = {}
    for name, config in (
        ("fast_preset", preset("fast")),
        ("largest", preset("fast").replace(**largest)),
    ):
        config = config.replace(epochs=3, batch_size=256)
        with tempfile.TemporaryDirectory() as tmp:
            model = build_model(config, whiten_images=x)
            train(model, config, split, verbose=False, backup_dir=Path(tmp) / "s", pause_at=1)
            archive = shutil.make_archive(str(Path(tmp) / "ckpt"), "zip", Path(tmp) / "s")
            sizes[name] = {
                "params": model.count_params(),
                "mib": Path(archive).stat().st_size / 2**20,
            }
        print(f"{name}: {sizes[name]['params']:,} parameters, {sizes[name]['mib']:.2f} MiB")
    levels = rungs(a.first_rung, a.eta, a.epochs)[:-1]
    kept = len(levels) * (a.trials // a.eta)
    figures = {
        "checkpoint": sizes,
        "study": {"trials": a.trials, "eta": a.eta, "rungs_below_top": levels,
                  "checkpoints_at_most": kept,
                  "peak_mib_at_most_largest": kept * sizes["largest"]["mib"],
                  "peak_mib_at_most_preset": kept * sizes["fast_preset"]["mib"]},
    }  # fmt: skip
    print(
        f"{a.trials} trials, eta {a.eta}, rungs {levels} below the top: at most {kept} "
        f"checkpoints, {figures['study']['peak_mib_at_most_largest']:.0f} MiB if all were the "
        f"largest config (plus one per running worker)"
    )
    write("checkpoint_size", figures)


if __name__ == "__main__":
    main()
