"""Training throughput of our loop against a plain, default ``model.fit``, timed alike.

Both sides train the same model (config, arrays, batch size, validation images) in one
multi-epoch ``fit`` call each, as a user runs them, timed by one callback,
:class:`~search.callbacks.EpochTimer`, in three parts per epoch: the stall before its first
batch (the data iterator's set-up), its training batches, and its validation. Two ratios:
``ratio_ours_to_plain`` over training batches only (the speed of a step: the same arithmetic on
both sides, so it moves only with what the loop adds per step), and
``ratio_ours_to_plain_with_stalls`` over stall plus batches (what a user waits for: Keras'
autotuned pipelines stall 0-9 s before the first batch of about half the epochs, at random,
which our loop's pipelines do not). The first epoch (tracing) is left out on both sides, and so is
everything before it (building, compiling); what ``fit`` spends after its last epoch is
reported beside (``after_last_epoch_s``). "ours" is :func:`search.training.fit` as a trial runs
it; "plain" is ``model.fit(x, y, shuffle=True)`` compiled with Keras' defaults. Sides alternate
run by run (ours, plain, plain, ours...), and each ratio is the median of the rounds' ratios.

Usage: ``python benchmarks/throughput.py [--data ZIP] [--presets seed fast] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REAL_ZIP, write  # noqa: E402
from search.config import PRESETS  # noqa: E402

# per preset: training images and timed epochs (an epoch takes several seconds: the seed
# preset 156 batches of 32, the fast one 8 of 1024)
SIZES = {"seed": (5000, 4), "fast": (8000, 3)}
VAL_IMAGES = 1000


class Side:
    """One way of training the config; :meth:`run` trains a fresh model once, timed."""

    def __init__(self, name: str, steps_per_execution: int | None):
        self.name, self.steps_per_execution = name, steps_per_execution

    def run(self, config, split) -> dict:
        import time

        import keras

        from search.callbacks import EpochTimer
        from search.models import build_model
        from search.training import (
            compile_for_training,
            default_steps_per_execution,
            fit,
            one_hot,
            steps_per_epoch,
        )

        keras.backend.clear_session(free_memory=True)
        keras.utils.set_random_seed(config.seed)
        spe = self.steps_per_execution or default_steps_per_execution(config)
        model = build_model(config, whiten_images=split.x_train)
        train_model = compile_for_training(
            model, config, steps_per_epoch(config, split), steps_per_execution=spe
        )
        timer = EpochTimer()
        if self.name == "plain_fit":  # Keras' own array adapter, shuffling and pipeline
            train_model.fit(
                split.x_train,
                one_hot(split.y_train),
                batch_size=config.batch_size,
                epochs=config.epochs,
                validation_data=(split.x_val, one_hot(split.y_val)),
                shuffle=True,
                callbacks=[timer],
                verbose=0,
            )
        else:  # a trial's loop: its data order and pipeline, its callbacks
            fit(train_model, config, split, verbose=False, callbacks=[timer])
        after_last_epoch = time.perf_counter() - timer.ends[-1]
        n_train, n_val, timed = len(split.x_train), len(split.x_val), len(timer.train) - 1
        train, stall = sum(timer.train[1:]), sum(timer.stall[1:])
        return {
            "steps_per_execution": spe,
            "train_images_per_s": n_train * timed / train,
            "with_stalls_images_per_s": n_train * timed / (train + stall),
            "val_images_per_s": n_val * timed / sum(timer.val[1:]),
            "stall_seconds": [round(x, 3) for x in timer.stall],
            "train_seconds": [round(x, 3) for x in timer.train],
            "val_seconds": [round(x, 3) for x in timer.val],
            "after_last_epoch_s": round(after_last_epoch, 3),
        }


def compare(preset_name: str, data: str, rounds: int, images: int | None, epochs, spes) -> dict:
    """``rounds`` runs of each side, alternating; the first epoch of each is not counted."""
    from search.config import preset
    from search.data import resolve_source, train_val

    n, timed = SIZES.get(preset_name, (5000, 4))
    n, timed = images or n, epochs or timed
    config = preset(preset_name).replace(epochs=timed + 1, train_size=n, val_size=VAL_IMAGES)
    split = train_val(resolve_source(data), val_size=VAL_IMAGES, train_size=n, split_seed=0)
    sides = [Side("plain_fit", 1), Side("ours", None)]
    sides += [Side(f"ours_spe{k}", k) for k in spes or ()]
    runs: dict[str, list[dict]] = {s.name: [] for s in sides}
    for r in range(rounds):
        for side in sides if r % 2 == 0 else sides[::-1]:
            runs[side.name].append(side.run(config, split))
            f = runs[side.name][-1]
            secs = {
                k: ", ".join(f"{t:.1f}" for t in f[k]) for k in ("train_seconds", "stall_seconds")
            }
            print(
                f"{preset_name} round {r + 1}: {side.name} {f['train_images_per_s']:.0f} "
                f"images/s (batches of each epoch {secs['train_seconds']} s; stalls before "
                f"them {secs['stall_seconds']} s)",
                flush=True,
            )
    out = {"batch_size": config.batch_size, "train_images": n, "val_images": VAL_IMAGES}
    out["timed_epochs"] = timed
    for figure, suffix in (
        ("train_images_per_s", ""),
        ("with_stalls_images_per_s", "_with_stalls"),
    ):
        plain = [f[figure] for f in runs["plain_fit"]]
        for s in sides[1:]:
            ratios = [f[figure] / p for f, p in zip(runs[s.name], plain)]
            out[f"ratio_{s.name}_to_plain{suffix}_by_round"] = [round(r, 3) for r in ratios]
            out[f"ratio_{s.name}_to_plain{suffix}"] = statistics.median(ratios)
    for s in sides:
        for key in ("train_images_per_s", "with_stalls_images_per_s", "val_images_per_s"):
            out[f"{s.name}_{key}"] = statistics.median(f[key] for f in runs[s.name])
    out["runs"] = runs
    return out


def step_overhead(steps: int = 500, batch: int = 32) -> dict:
    """Milliseconds per training step of a model with next to no arithmetic (one Dense layer on
    32 numbers) at 1 and at 8 steps per execution: the per-step cost that
    ``steps_per_execution`` can remove, to set beside a real step's."""
    import keras
    import numpy as np

    from search.callbacks import EpochTimer
    from search.training import one_hot

    rng = np.random.default_rng(0)
    x, y = rng.random((steps * batch, 32), "float32"), one_hot(rng.integers(0, 10, steps * batch))
    out = {}
    for spe in (1, 8):
        model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(10)])
        model.compile(
            optimizer="sgd",
            loss="categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=spe,
        )
        timer = EpochTimer()
        model.fit(x, y, batch_size=batch, epochs=4, callbacks=[timer], verbose=0)
        out[f"ms_per_step_spe{spe}"] = 1000 * statistics.median(timer.train[1:]) / steps
    out.update(first_fit_seconds())
    return out


def first_fit_seconds(rounds: int = 3) -> dict:
    """Seconds of a first, tiny ``fit`` of the seed CNN (7 batches: almost all of it tracing) at
    1 and at 8 steps per execution, alternating: what tracing the multi-step loop costs."""
    import time

    import keras
    import numpy as np

    from search.config import preset
    from search.data import Split
    from search.models import build_model
    from search.training import compile_for_training, fit, steps_per_epoch

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    split = Split(x, rng.integers(0, 10, 200), x[:64], rng.integers(0, 10, 64))
    config = preset("seed").replace(epochs=1, train_size=200, val_size=64)
    seconds: dict[int, list[float]] = {1: [], 8: []}
    for _ in range(rounds):
        for spe in seconds:
            keras.backend.clear_session(free_memory=True)
            model = build_model(config)
            steps = steps_per_epoch(config, split)
            tm = compile_for_training(model, config, steps, steps_per_execution=spe)
            t0 = time.perf_counter()
            fit(tm, config, split, verbose=False)
            seconds[spe].append(round(time.perf_counter() - t0, 3))
    return {f"seed_first_fit_s_spe{k}": v for k, v in seconds.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REAL_ZIP))
    p.add_argument(
        "--presets",
        nargs="*",
        default=list(SIZES),
        choices=list(PRESETS),
        help="none: the overheads only",
    )
    p.add_argument("--images", type=int, default=None, help="training images (default per preset)")
    p.add_argument("--epochs", type=int, default=None, help="timed epochs (default per preset)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--steps-per-execution",
        type=int,
        nargs="*",
        default=[],
        help="also time our loop with these steps_per_execution values (to choose the default)",
    )
    p.add_argument("--name", default="throughput", help="the JSON's name in results/benchmarks")
    a = p.parse_args()
    figures = {"step_overhead": step_overhead()}
    print(f"per-step overhead of an almost empty model: {figures['step_overhead']}", flush=True)
    for name in a.presets:
        f = figures[name] = compare(
            name, a.data, a.rounds, a.images, a.epochs, a.steps_per_execution
        )
        print(
            f"{name} (batch {f['batch_size']}): training batches: ours "
            f"{f['ours_train_images_per_s']:.0f} images/s, plain fit "
            f"{f['plain_fit_train_images_per_s']:.0f}: ratio {f['ratio_ours_to_plain']:.3f}; with "
            f"the stalls before them: ours {f['ours_with_stalls_images_per_s']:.0f}, plain fit "
            f"{f['plain_fit_with_stalls_images_per_s']:.0f}: ratio "
            f"{f['ratio_ours_to_plain_with_stalls']:.3f} (medians of {a.rounds} rounds)",
            flush=True,
        )  # and a real step, beside the overhead:
        f["plain_fit_ms_per_step"] = 1000 * f["batch_size"] / f["plain_fit_train_images_per_s"]
    write(a.name, figures)


if __name__ == "__main__":
    main()
