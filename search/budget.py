"""Budgets known the moment a model is built: parameters and batch-1 inference latency.

Latency is timed on a compiled inference function after warm-up, never on ``model.predict``
(whose per-call overhead alone is tens of milliseconds). Keras is imported where a model is
measured, not with the module: the limits are needed by commands that build no model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

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


def compiled_inference(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """A compiled ``x -> logits`` function of the model in inference mode, for the backend."""
    import keras

    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: fn(x).numpy()
    if backend == "jax":
        import jax

        fn = jax.jit(lambda x: model(x, training=False))
        return lambda x: np.asarray(fn(x).block_until_ready())
    if backend == "torch":
        import torch

        def run(x):
            with torch.no_grad():
                return keras.ops.convert_to_numpy(model(x, training=False))

        return run
    raise RuntimeError(f"unsupported Keras backend {backend!r}")


def intra_op_threads() -> int:
    """The thread count inference runs with: the backend's setting, else every core."""
    import keras

    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        n = tf.config.threading.get_intra_op_parallelism_threads()
        if n:
            return n
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def measure(model: keras.Model, *, warmup: int = 20, runs: int = 200) -> Measurement:
    """Parameter count and batch-1 latency percentiles of the model."""
    import keras

    fn = compiled_inference(model)
    x = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3)).astype("float32")
    for _ in range(warmup):
        fn(x)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - t0
    return Measurement(
        params=int(model.count_params()),
        latency_p50_ms=float(np.percentile(times, 50) * 1e3),
        latency_p95_ms=float(np.percentile(times, 95) * 1e3),
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
