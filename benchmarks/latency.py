"""Batch-1 latency of one trained model in each way this tool can run it, in one run.

Keras ``predict`` (what a newcomer calls first), a compiled Keras call (what the budget check
times), ONNX Runtime and LiteRT, each on the same image, in interleaved rounds so a busy
machine slows them alike. The exports are made in a temporary copy of the run folder, through
``search.export`` (so each is parity-checked on validation images first).

    python benchmarks/latency.py                       # the shipped fast-decay-12 model
    python benchmarks/latency.py --run DIR --rounds 5

Writes ``results/benchmarks/latency.json``; the figure the issue asks for is
``best_export_vs_compiled_keras``: the compiled Keras p50 over the best export's p50.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REAL_ZIP, write  # noqa: E402
from search.cli.common import configure_libraries  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "fast-decay-12"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=REFERENCE)
    p.add_argument("--data", default=str(REAL_ZIP))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=300, help="timed calls per method per round")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    configure_libraries()

    from search import inference, timing
    from search.data import resolve_source
    from search.export import FORMATS, check_images, export_run

    tmp = Path(tempfile.mkdtemp(prefix="latency-"))
    try:
        run = tmp / "run"
        shutil.copytree(args.run, run, ignore=shutil.ignore_patterns("model.onnx", "*.tflite"))
        images, about = check_images(run, resolve_source(args.data))
        images = images[:1000]
        keras_runner = inference.load(run / "model.keras")
        model = keras_runner.model
        methods = {
            "keras_predict": lambda x: model.predict(x, verbose=0),
            "keras_compiled": keras_runner.one,
        }
        checks, threads = {}, {"keras_compiled": keras_runner.threads}
        for fmt in FORMATS:
            runtime = {"onnx": "onnxruntime", "litert": "ai_edge_litert"}[fmt]
            if importlib.util.find_spec(runtime) is None:
                print(f"{fmt}: skipped, {runtime} is not installed")
                continue
            checks[fmt] = export_run(run, fmt, images, about=f"{len(images)} of {about}")
            runner = inference.load(run / inference.FILES[fmt])
            methods[fmt], threads[fmt] = runner.one, runner.threads
        rounds: dict[str, list[list[float]]] = {name: [] for name in methods}
        for r in range(args.rounds):
            for name, fn in methods.items():
                calls = 30 if name == "keras_predict" else args.calls  # predict is ~30x slower
                rounds[name].append(list(timing.latency_ms(fn, runs=calls)))
            print(
                f"round {r + 1}: " + ", ".join(f"{n} {v[-1][0]:.3f} ms" for n, v in rounds.items()),
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    figures = {
        name: {
            "p50_ms": float(np.median([p50 for p50, _ in v])),
            "p95_ms": float(np.median([p95 for _, p95 in v])),
            "rounds_p50_ms": [round(p50, 4) for p50, _ in v],
            "threads": threads.get(name),
        }
        for name, v in rounds.items()
    }
    exported = [f for f in FORMATS if f in figures]
    summary = {"model": str(args.run), "methods": figures, "export_checks": checks}
    if exported:
        best = min(exported, key=lambda f: figures[f]["p50_ms"])
        summary["best_export"] = best
        summary["best_export_vs_compiled_keras"] = (
            figures["keras_compiled"]["p50_ms"] / figures[best]["p50_ms"]
        )
    for name, f in figures.items():
        print(f"{name:<15} p50 {f['p50_ms']:8.3f} ms  p95 {f['p95_ms']:8.3f} ms")
    if exported:
        ratio = summary["best_export_vs_compiled_keras"]
        print(f"best export {best}: {ratio:.1f}x faster than the compiled Keras call")
    write("latency", summary, out=args.out)


if __name__ == "__main__":
    main()
