"""Budgets known the moment a model is built: parameters and batch-1 inference latency.

Latency is timed on a compiled inference function after warm-up, never on ``model.predict``
(whose per-call overhead alone is tens of milliseconds). Keras is imported where a model is
measured, not with the module: the limits are needed by commands that build no model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from search.timing import compiled_inference, intra_op_threads, latency_ms

if TYPE_CHECKING:
    import keras

MAX_PARAMS = 1_000_000
MAX_LATENCY_MS = 20.0


@dataclass(frozen=True)
class Limits:
    max_params: int = MAX_PARAMS
    max_latency_ms: float = MAX_LATENCY_MS


@dataclass(frozen=True)
class Measurement:
    params: int
    latency_p50_ms: float
    latency_p95_ms: float
    threads: int  # intra-op threads the inference ran with
    backend: str

    def to_dict(self) -> dict:
        return asdict(self)


def measure(model: keras.Model, *, warmup: int = 20, runs: int = 200) -> Measurement:
    """Parameter count and batch-1 latency percentiles of the model."""
    import keras

    p50, p95 = latency_ms(compiled_inference(model), warmup=warmup, runs=runs)
    return Measurement(
        params=int(model.count_params()),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        threads=intra_op_threads(),
        backend=keras.config.backend(),
    )


def violations(m: Measurement, limits: Limits = Limits()) -> list[str]:
    """Each broken limit, said with the amount by which it is broken; empty when within budget."""
    out = []
    if m.params >= limits.max_params:
        over = m.params - limits.max_params
        out.append(
            f"parameters {m.params:,} exceed the limit {limits.max_params:,} by {over:,} "
            f"({over / limits.max_params:.1%})"
        )
    if m.latency_p50_ms >= limits.max_latency_ms:
        over = m.latency_p50_ms - limits.max_latency_ms
        out.append(
            f"latency p50 {m.latency_p50_ms:.2f} ms exceeds the limit "
            f"{limits.max_latency_ms:g} ms by {over:.2f} ms ({over / limits.max_latency_ms:.1%})"
        )
    return out
