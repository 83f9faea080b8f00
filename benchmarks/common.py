"""What every benchmark writes beside its figures: machine, threads, versions, command."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from search.budget import intra_op_threads
from search.provenance import provenance

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
