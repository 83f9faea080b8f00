"""Training speed of a trial's loop under environment settings a user can choose before
starting: TensorFlow's oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS``, off by default on CPUs
without AVX-512 such as this machine's AMD EPYC) and glibc's malloc thresholds (which decide
whether freed tensors go back to the kernel, to be faulted in and zeroed again).

Each variant trains the seed preset in a fresh process (the settings are read at start-up),
variants alternating round by round, and reports training images per second over the batches
of every epoch but the first (tracing), and the budget's single-image latency
(:func:`search.budget.measure`) of the same model. Ratios are to the first variant (the
defaults), per round, and their median.

Usage: ``python benchmarks/cpu_env.py [--rounds 3] [--images 3200] [--epochs 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REAL_ZIP, write  # noqa: E402

BIG = str(1 << 30)
VARIANTS = {
    "default": {},
    "onednn": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "malloc_keep": {"MALLOC_MMAP_THRESHOLD_": BIG, "MALLOC_TRIM_THRESHOLD_": BIG},
    "onednn_malloc_keep": {
        "TF_ENABLE_ONEDNN_OPTS": "1",
        "MALLOC_MMAP_THRESHOLD_": BIG,
        "MALLOC_TRIM_THRESHOLD_": BIG,
    },
}
SETTINGS = {k for v in VARIANTS.values() for k in v}  # unset unless a variant sets them


def child(data: str, images: int, epochs: int, preset_name: str) -> None:
    import resource

    from benchmarks.throughput import Side
    from search.config import preset
    from search.data import resolve_source, train_val

    config = preset(preset_name).replace(epochs=epochs + 1, train_size=images, val_size=500)
    split = train_val(resolve_source(data), val_size=500, train_size=images, split_seed=0)
    r = Side("ours", None).run(config, split)
    from search.budget import measure  # the budget's latency, as a run measures it
    from search.models import build_model

    m = measure(build_model(config, whiten_images=split.x_train))
    r["latency_p50_ms"], r["latency_p95_ms"] = m.latency_p50_ms, m.latency_p95_ms
    usage = resource.getrusage(resource.RUSAGE_SELF)
    r["minor_page_faults"] = usage.ru_minflt
    r["user_cpu_s"], r["system_cpu_s"] = usage.ru_utime, usage.ru_stime
    print("RESULT " + json.dumps(r), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REAL_ZIP))
    p.add_argument("--preset", default="seed")
    p.add_argument("--images", type=int, default=3200)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (one more is traced)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--name", default="cpu_env")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.data, a.images, a.epochs, a.preset)
    runs: dict[str, list[dict]] = {v: [] for v in a.variants}
    for r in range(a.rounds):
        for v in a.variants if r % 2 == 0 else a.variants[::-1]:
            env = {k: x for k, x in os.environ.items() if k not in SETTINGS} | VARIANTS[v]
            cmd = [sys.executable, __file__, "--child", "--data", a.data, "--preset", a.preset]
            cmd += ["--images", str(a.images), "--epochs", str(a.epochs)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            f = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:])
            runs[v].append(f)
            print(
                f"round {r + 1}: {v} {f['train_images_per_s']:.0f} images/s, "
                f"latency p50 {f['latency_p50_ms']:.2f} ms, {f['minor_page_faults']:,} page "
                f"faults, system CPU {f['system_cpu_s']:.0f} s "
                f"of {f['user_cpu_s'] + f['system_cpu_s']:.0f} s",
                flush=True,
            )
    first = a.variants[0]
    figures = {"preset": a.preset, "train_images": a.images, "timed_epochs": a.epochs}
    figures["variants"] = {v: VARIANTS[v] for v in a.variants}
    for v in a.variants:
        speeds = [f["train_images_per_s"] for f in runs[v]]
        ratios = [s / f["train_images_per_s"] for s, f in zip(speeds, runs[first])]
        figures[v] = {
            "train_images_per_s_median": statistics.median(speeds),
            "latency_p50_ms_median": statistics.median(f["latency_p50_ms"] for f in runs[v]),
            f"ratio_to_{first}_median": statistics.median(ratios),
            f"ratio_to_{first}_by_round": [round(x, 3) for x in ratios],
            "runs": runs[v],
        }
        print(f"{v}: {statistics.median(speeds):.0f} images/s, {statistics.median(ratios):.2f}x")
    write(a.name, figures)


if __name__ == "__main__":
    main()
