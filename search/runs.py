"""A run folder: one config trained into ``model.keras``, and its one-time test evaluation.

``train_run`` writes ``config.json``, ``budget.json``, ``history.csv``, ``train.json`` and
``model.keras``; ``evaluate_run`` adds ``test_metrics.json``, the confusion matrix as CSV and
PNGs, and counts how many times the run was evaluated on the test set.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from search import budget, env, inference, progress, timing
from search.config import Config
from search.confusion import write_confusion
from search.data import Source, load_test, resolve_source, split_for
from search.errors import UserError
from search.evaluate import TTA_KEYS, next_evaluation, tta_copies, tta_level, tta_scores
from search.provenance import provenance


def new_run_dir(name: str, root: Path | None = None) -> Path:
    """A fresh folder ``results/runs/<time>-<name>`` (suffixed if the second is taken)."""
    base = (root or env.results_root()) / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    path.mkdir(parents=True)
    return path


def latest_run(root: Path | None = None) -> Path | None:
    """The newest folder under ``results/`` holding a ``model.keras``."""
    runs = [p.parent for p in (root or env.results_root()).glob("**/model.keras")]
    return max(runs, key=lambda p: (p / "model.keras").stat().st_mtime, default=None)


def write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def _check_resumable(out: Path, config: Config) -> None:
    """A run folder is new, or an interrupted run of the same config: never overwrite work."""
    if (out / "train.json").exists():
        raise UserError(f"{out} holds a finished run; nothing was changed. Choose another --out.")
    if (out / "config.json").exists() and Config.from_json(out / "config.json") != config:
        raise UserError(
            f"{out} holds an interrupted run of another config; nothing was changed. Choose "
            f"another --out, or run that config again to resume it."
        )


def train_run(
    config: Config,
    source: Source,
    out: Path,
    *,
    verbose: bool = True,
    extra: dict | None = None,
) -> dict:
    """Train ``config`` on its split of the training images into the folder ``out``.

    The training state is backed up every epoch under ``out/backup``: running again with the
    same folder resumes after the last finished epoch. Returns what ``train.json`` holds.
    """
    import keras

    # Keras with them: imported when a run trains, not by test, export or predict
    from search.models import build_model
    from search.training import read_history, train

    _check_resumable(out, config)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config.to_dict())
    split = split_for(config, source)
    keras.backend.clear_session()
    model = build_model(config, whiten_images=split.x_train)
    m = budget.measure(model)
    over = budget.violations(m)
    write_json(out / "budget.json", {**m.to_dict(), "violations": over})
    if verbose:
        print(
            f"{config.family}: {m.params:,} parameters, latency p50 {m.latency_p50_ms:.2f} ms "
            f"(p95 {m.latency_p95_ms:.2f}, {m.threads} threads); training on "
            f"{len(split.x_train):,} images, validating on {len(split.x_val):,}",
            flush=True,
        )
        for v in over:
            print(f"warning: over budget: {v}", flush=True)
    result = train(
        model,
        config,
        split,
        verbose=verbose,
        backup_dir=out / "backup",
        history_csv=out / "history.csv",
        progress=0 if verbose and progress.wanted() else None,
    )
    model.save(out / "model.keras")
    history = read_history(out / "history.csv")  # every epoch, those before a resume too
    info = {
        "status": result.status,
        "epochs": result.epochs,
        "train_seconds": sum(r["seconds"] for r in history),
        "val_accuracy": result.val_accuracy,
        "train_images": len(split.x_train),
        "val_images": len(split.x_val),
        "data_source": str(source),
        "budget": m.to_dict(),
        **(extra or {}),
        "provenance": provenance(),
    }
    write_json(out / "train.json", info)
    return info


def metrics_file(run: Path, fmt: str = "keras") -> Path:
    """Where a test evaluation of the run's model in ``fmt`` is written."""
    return run / ("test_metrics.json" if fmt == "keras" else f"test_metrics_{fmt}.json")


def evaluate_run(run: Path, source: Source, *, tta: bool | None = None, fmt: str = "keras") -> dict:
    """Evaluate the run's model once on the 10,000 test images and write the metrics.

    Besides the plain accuracy: flip TTA when the config's ``tta_flip`` is set, flip plus
    one-pixel shifts when its ``tta_shift`` is; ``tta`` True reports both, False neither.
    ``fmt``: the Keras model, or its ONNX or LiteRT export (``cifar10-search export``), scored
    the same way into ``test_metrics_<fmt>.json``; latency is then the runtime's own.
    """
    config = Config.from_json(run / "config.json")
    path = run / inference.FILES[fmt]
    if not path.exists():
        hint = f"; export it with 'cifar10-search export --run {run} --format {fmt}'"
        raise UserError(f"{run} holds no {path.name}" + (hint if fmt != "keras" else ""))
    runner = inference.load(path)
    x, y = load_test(source)
    level = tta_level(config, tta)
    metrics = tta_scores(runner, x, y, level=level)
    tta_p50 = None
    if runner.model is not None:
        m = budget.measure(runner.model).to_dict()
        if level:  # the test's TTA: one image's copies through the model as one batch
            fn = timing.compiled_inference(runner.model)
            tta_p50 = timing.latency_ms(lambda x: fn(tta_copies(x, level)))[0]
    else:
        p50, p95 = timing.latency_ms(runner.one)
        params = json.loads((run / "budget.json").read_text())["params"]
        m = {"params": params, "latency_p50_ms": p50, "latency_p95_ms": p95}
        m["threads"] = runner.threads
    previous = metrics_file(run, fmt)
    result = {
        "run": str(run),
        "format": fmt,
        "accuracy": metrics["plain"]["accuracy"],
        **{key: metrics.get(level, {}).get("accuracy") for level, key in TTA_KEYS.items()},
        "per_class_accuracy": metrics["plain"]["per_class_accuracy"],
        "confusion_matrix": metrics["plain"]["confusion_matrix"],
        "per_class_accuracy_tta_flip": metrics.get("flip", {}).get("per_class_accuracy"),
        "test_images": len(y),
        "params": m["params"],
        "latency_p50_ms": m["latency_p50_ms"],
        "latency_p95_ms": m["latency_p95_ms"],
        "latency_threads": m["threads"],
        "latency_tta_p50_ms": tta_p50,  # batch-1 with the TTA copies (Keras model only)
        "config": config.to_dict(),
        "data_source": str(source),
        "data_checksum_sha256": source.checksum(),
        "test_evaluations": next_evaluation(previous),
        "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **provenance(),
    }
    if fmt == "keras":
        write_confusion(run, np.array(metrics["plain"]["confusion_matrix"]))
    write_json(previous, result)
    return result


def source_of(run: Path, data: str | None) -> Source:
    """The test images' source: --data, else $CIFAR10_DATA, else the source the run was
    trained from (recorded in its train.json), else Keras' download."""
    if not data and not env.text("CIFAR10_DATA") and (run / "train.json").exists():
        recorded = json.loads((run / "train.json").read_text()).get("data_source", "")
        if recorded and Path(recorded).exists():
            print(f"data: {recorded} (the run's own source)")
            return resolve_source(recorded)
    return resolve_source(data)
