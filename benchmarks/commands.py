"""How long the commands that build no model take, as whole processes, beside Python's start-up.

Each command runs ``--rounds`` times, interleaved with the others, against a copy of the
committed ``results/reference/fast30`` study (35 trial segments) in a temporary results folder,
so nothing committed is rewritten. The figure is each command's median wall time; the issue's
target is 1.5 s on this machine.

    python benchmarks/commands.py [--rounds 5] [--study-dir results/reference/fast30]

Writes ``results/benchmarks/commands.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "fast30"


def commands(study: str, bad_space: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "search.cli"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "--help": [*cli, "--help"],
        "status": [*cli, "status", "--study", study],
        "plots": [*cli, "plots", "--study", study],
        "bad space file": [*cli, "start", "--study", "bad", "--space", str(bad_space)],
        "missing study": [*cli, "status", "--study", "no-such-study"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--study-dir", type=Path, default=REFERENCE)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(
            a.study_dir, root / a.study_dir.name, ignore=shutil.ignore_patterns("final")
        )
        bad = root / "bad.toml"
        bad.write_text("[params.lr\n")
        env = {**os.environ, "CIFAR10_RESULTS": str(root)}
        runs = commands(a.study_dir.name, bad)
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        codes: dict[str, int] = {}
        for r in range(a.rounds):
            for name, argv in runs.items():
                t0 = time.perf_counter()
                done = subprocess.run(argv, env=env, capture_output=True, text=True)
                seconds[name].append(round(time.perf_counter() - t0, 3))
                codes[name] = done.returncode
            print(f"round {r + 1}: " + ", ".join(f"{n} {s[-1]:.2f} s" for n, s in seconds.items()))
    figures = {
        "study": str(a.study_dir),
        "median_seconds": {n: statistics.median(s) for n, s in seconds.items()},
        "exit_status": codes,
        "seconds": seconds,
    }
    write("commands", figures)


if __name__ == "__main__":
    main()
