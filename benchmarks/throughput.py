"""Training throughput of our loop against a plain ``model.fit``, and batch-1 latency.

Same model, arrays, batch size and validation data; the runs alternate (ours, plain, ours,
plain...) so the machine's noise falls on both. The first epoch of every run (tracing) is left
out. Usage: ``python benchmarks/throughput.py [--data ZIP] [--images 5000] [--epochs 2]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REAL_ZIP, write  # noqa: E402
from search import budget  # noqa: E402
from search.config import preset  # noqa: E402
from search.data import resolve_source, train_val  # noqa: E402
from search.models import build_model  # noqa: E402
from search.training import compile_for_training, one_hot, train  # noqa: E402


def ours(config, split) -> float:
    r = train(build_model(config), config, split, verbose=False)
    return len(split.x_train) / float(np.mean(r.history["seconds"][1:]))


def plain(config, split) -> float:
    model = build_model(config)
    tm = compile_for_training(model, config, math.ceil(len(split.x_train) / config.batch_size))
    args = dict(
        x=split.x_train,
        y=one_hot(split.y_train),
        batch_size=config.batch_size,
        validation_data=(split.x_val, one_hot(split.y_val)),
        shuffle=True,
        verbose=0,
    )
    tm.fit(epochs=1, **args)  # tracing, left out as for ours
    t0 = time.perf_counter()
    tm.fit(epochs=config.epochs - 1, **args)
    return len(split.x_train) * (config.epochs - 1) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=str(REAL_ZIP))
    p.add_argument("--preset", default="seed")
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per run (after one warm-up)")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    config = preset(a.preset).replace(epochs=a.epochs + 1, train_size=a.images, val_size=1000)
    split = train_val(resolve_source(a.data), val_size=1000, train_size=a.images, split_seed=0)
    rates = {"ours": [], "plain_fit": []}
    for r in range(a.rounds):
        for name, fn in (("ours", ours), ("plain_fit", plain)):
            rates[name].append(fn(config, split))
            print(f"round {r + 1}: {name} {rates[name][-1]:.0f} images/s", flush=True)
    m = budget.measure(build_model(config), warmup=50, runs=500)
    figures = {
        "preset": a.preset,
        "train_images": a.images,
        "batch_size": config.batch_size,
        "params": m.params,
        "ours_images_per_s": rates["ours"],
        "plain_fit_images_per_s": rates["plain_fit"],
        "ratio_ours_to_plain": float(np.median(rates["ours"]) / np.median(rates["plain_fit"])),
        "latency_batch1_p50_ms": m.latency_p50_ms,
        "latency_batch1_p95_ms": m.latency_p95_ms,
    }
    print(
        f"ratio ours / plain fit: {figures['ratio_ours_to_plain']:.3f}; "
        f"latency p50 {m.latency_p50_ms:.2f} ms, p95 {m.latency_p95_ms:.2f} ms"
    )
    write("throughput", figures)


if __name__ == "__main__":
    main()
