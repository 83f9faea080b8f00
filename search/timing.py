"""Timing inference, shared by the budget check and by running saved models: a model's
compiled ``x -> logits`` function, the thread count it runs with, batch-1 latency.
Keras and the backends are imported inside the functions: the limits and the runners are
needed by commands that build no model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras


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
    return usable_cores()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def latency_ms(fn: Callable[[np.ndarray], object], *, warmup: int = 20, runs: int = 200):
    """Batch-1 latency of ``fn`` on one random image: (p50, p95) in milliseconds."""
    x = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3)).astype("float32")
    for _ in range(warmup):
        fn(x)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - t0
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 95) * 1e3)
