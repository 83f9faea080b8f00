"""``cifar10_train.py``, ``cifar10_test.py`` and ``cifar10-search train | retrain | test``:
one config trained into a run folder, a study's trial retrained, a model tested once."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from search.cli.common import add_data_option, configure_libraries, guarded, parse_set
from search.config import SCHEDULES, Config, preset
from search.errors import UserError


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset or config file, then ``--set`` overrides, then the named options."""
    base = Config.from_json(args.config) if args.config else preset(args.preset or "seed")
    changes = parse_set(args.set or [])
    for name in ("epochs", "train_size", "val_size", "seed"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    if getattr(args, "full", False):
        changes.update(val_size=0, train_size=None)
    return base.replace(**changes) if changes else base


def _add_config_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--preset",
        help="a named config: seed (default), historical (the hand-tuned model as it was, "
        "heavier dropout), resnet20 or fast",
    )
    g.add_argument("--config", metavar="FILE.json", help="a config saved by an earlier run")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key")
    p.add_argument("--epochs", type=int)
    p.add_argument("--train-size", type=int, help="train on a stratified subset of this size")
    p.add_argument("--val-size", type=int, help="validation images held out (default 5000)")
    p.add_argument("--seed", type=int)


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10_train.py",
        description="Train a config on the train/validation split, or on all 50,000 training "
        "images with --full, into a run folder under results/.",
    )
    _add_config_options(p)
    add_data_option(p)
    p.add_argument("--full", action="store_true", help="train on all 50,000 training images")
    p.add_argument("--out", type=Path, help="run folder (default: a new one under results/runs)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    g = p.add_argument_group(
        "retrain a study's trial",
        "with --study: train the best complete trial's exact config (or --trial N's) on all "
        "50,000 training images into results/NAME/final/; run again to resume",
    )
    g.add_argument("--study", metavar="NAME")
    g.add_argument("--storage", metavar="URL", help="the study's storage, if not the default")
    g.add_argument("--trial", type=int, metavar="N", help="a trial number (default: the best)")
    g.add_argument("--seeds", type=int, default=1, help="train this many seeds (default 1)")
    g.add_argument(
        "--race",
        type=int,
        metavar="K",
        help="first train the space's base config (trial 0) if it is not among them, then "
        "the top K complete trials, at the retrain's epochs on the train split, and retrain "
        "the one that scores best on validation",
    )
    g.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="race and retrain with this learning-rate schedule instead of the searched one "
        "(onecycle after a search whose promote rungs used wsd: 0.5 points better at full "
        "length, and wsd's rungs rank configs as one-cycle's full runs do)",
    )
    g.add_argument(
        "--choose-tta",
        action="store_true",
        help="with --race: choose the test-time augmentation level (plain, flip, flip+shift) "
        "on the validation images with the winner's model, and test the retrain with it "
        "(TTA costs 2 or 6 forward passes per image, no training)",
    )
    g.add_argument(
        "--epoch-factor",
        type=float,
        default=None,
        help="epochs = the search's epochs times this (default 3), unless --epochs",
    )
    return p


@guarded
def train_command(args: argparse.Namespace) -> int:
    from search.data import resolve_source
    from search.runs import new_run_dir, train_run

    if args.study:
        return _retrain(args)
    for opt in ("trial", "epoch_factor", "race", "schedule", "choose_tta"):
        if getattr(args, opt) not in (None, False):
            raise UserError(f"--{opt.replace('_', '-')} goes with --study NAME.")
    config = config_from_args(args)
    source = resolve_source(args.data)
    out = args.out or new_run_dir(Path(args.config).stem if args.config else args.preset or "seed")
    print(f"run folder: {out}", flush=True)
    info = train_run(config, source, out, verbose=not args.quiet)
    va = info["val_accuracy"]
    print(
        f"{info['status']}: {info['epochs']} epochs in {info['train_seconds']:.0f}s"
        + (f", validation accuracy {va:.4f}" if va is not None else "")
    )
    print(out)
    return 0


def _retrain(args: argparse.Namespace) -> int:
    """Retrain a study's trial: ``cifar10_train.py --study``, ``train --study`` and
    ``retrain`` all come here."""
    from search import final
    from search.data import resolve_source

    if not args.study:
        raise UserError("retrain needs --study NAME (to train a preset or config, use train).")
    clash = [
        o
        for o in ("preset", "config", "set", "train_size", "val_size", "seed", "out", "full")
        if getattr(args, o)
    ]
    if clash:
        raise UserError(
            "--study retrains the trial's own config on all training images; it does not take "
            + ", ".join(f"--{o.replace('_', '-')}" for o in clash)
            + "."
        )
    out = final.retrain(
        args.study,
        args.storage,
        resolve_source(args.data),
        trial=args.trial,
        epochs=args.epochs,
        epoch_factor=args.epoch_factor or final.DEFAULT_EPOCH_FACTOR,
        seeds=args.seeds,
        race_k=args.race,
        schedule=args.schedule,
        choose_tta=args.choose_tta,
        verbose=not args.quiet,
    )
    print(f"retrained: test it once with 'python cifar10_test.py --study {args.study}'")
    print(out)
    return 0


retrain_command = guarded(_retrain)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", type=Path, help="run folder (default: the newest under results/)")
    p.add_argument(
        "--study",
        metavar="NAME",
        help="the study's retrained seeds in results/NAME/final/",
    )


def _runs_of(args: argparse.Namespace) -> list[Path]:
    """The run folders a command acts on: a study's retrained seeds, ``--run DIR``, else the
    newest run under results/."""
    from search.env import results_root
    from search.runs import latest_run

    if args.study:
        from search import final

        if args.run:
            raise UserError("give --study NAME or --run DIR, not both.")
        return final.seed_runs(args.study)
    run = args.run or latest_run()
    if run is None:
        raise UserError(
            f"no trained run found under {results_root()}/; train one with "
            f"'python cifar10_train.py' or name it with --run DIR."
        )
    if not (run / "model.keras").exists():
        raise UserError(f"{run} holds no model.keras; is it a finished run folder?")
    return [run]


def test_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10_test.py",
        description="Evaluate a trained run once on the 10,000 held-out test images.",
    )
    _add_model_options(p)
    add_data_option(p)
    p.add_argument(
        "--format",
        choices=("keras", "onnx", "litert"),
        default="keras",
        help="test the run's model.keras (default), or its export (cifar10-search export)",
    )
    tta = p.add_mutually_exclusive_group()
    tta.add_argument(
        "--tta",
        dest="tta",
        action="store_true",
        default=None,
        help="also report test-time augmentation: flip, and flip plus 1-pixel shifts "
        "(default: what the run's config names)",
    )
    tta.add_argument("--no-tta", dest="tta", action="store_false", help="plain accuracy only")
    return p


@guarded
def test_command(args: argparse.Namespace) -> int:
    from search.evaluate import TTA_REPORTS
    from search.runs import evaluate_run, metrics_file, source_of

    runs = _runs_of(args)
    if args.study:
        from search import final

        source = source_of(runs[0], args.data)
        result = final.evaluate_final(args.study, source, tta=args.tta, fmt=args.format)
        print(final.describe(result))
        print(f"wrote {metrics_file(final.final_dir(args.study), args.format)}")
        return 0
    run = runs[0]
    r = evaluate_run(run, source_of(run, args.data), tta=args.tta, fmt=args.format)
    shown = "" if args.format == "keras" else f", {args.format} export"
    print(f"run {run}{shown} (test evaluation number {r['test_evaluations']})")
    print(
        f"test accuracy {r['accuracy']:.4f}"
        + "".join(f"  ({label} TTA {r[key]:.4f})" for key, label in TTA_REPORTS if r[key])
    )
    for c, a in r["per_class_accuracy"].items():
        print(f"  {c:<11} {a:.4f}")
    print(
        f"parameters {r['params']:,}  latency p50 {r['latency_p50_ms']:.2f} ms  "
        f"p95 {r['latency_p95_ms']:.2f} ms ({r['latency_threads']} threads)"
    )
    confusion = "" if shown else " and the confusion matrices"
    print(f"wrote {metrics_file(run, args.format)}{confusion}")
    return 0


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10-search export",
        description="Export a run's model.keras to ONNX and/or LiteRT beside it. Each file is "
        "kept only if its classes agree with the Keras model's on at least 99.9%% of the "
        "validation images (never the test images). Needs: pip install -e '.[export]'",
    )
    _add_model_options(p)
    add_data_option(p)
    p.add_argument("--format", choices=("onnx", "litert", "all"), default="all")
    return p


@guarded
def export_command(args: argparse.Namespace) -> int:
    from search.export import FORMATS, ExportError, check_images, export_run
    from search.runs import source_of

    runs = _runs_of(args)
    formats = FORMATS if args.format == "all" else (args.format,)
    source = source_of(runs[0], args.data)
    failed = 0
    for run in runs:
        images, about = check_images(run, source)
        for fmt in formats:
            try:
                r = export_run(run, fmt, images, about=about)
            except ExportError as e:
                print(f"error: {e}", file=sys.stderr, flush=True)
                failed += 1
                continue
            print(
                f"{run / r['file']}: {r['bytes'] / 2**20:.1f} MiB, exported in "
                f"{r['export_seconds']:.1f} s; its classes agree with Keras' on "
                f"{r['agreement']:.2%} of {about}, largest logit difference "
                f"{r['max_logit_diff']:.2g}",
                flush=True,
            )
    return 1 if failed else 0


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10-search predict",
        description="Classify your own images (any size or mode; each is centre-cropped to a "
        "square and resized to 32x32 RGB) with a trained model: the top classes of each.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", type=Path, metavar="PATH", help="a .keras, .onnx or .tflite file")
    g.add_argument("--run", type=Path, metavar="DIR", help="a run folder's model")
    g.add_argument("--study", metavar="NAME", help="the study's retrained model (first seed)")
    p.add_argument(
        "--format",
        choices=("keras", "onnx", "litert"),
        default="keras",
        help="with --run or --study: which of the folder's model files (default keras)",
    )
    p.add_argument("--top", type=int, default=3, help="classes to show per image (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON, for scripts")
    return p


@guarded
def predict_command(args: argparse.Namespace) -> int:
    from search import inference

    if not 1 <= args.top <= 10:
        raise UserError(f"--top takes 1 to 10 classes, got {args.top}.")
    path = args.model or _runs_of(args)[0] / inference.FILES[args.format]
    inference.format_of(path)  # a bad model path is refused before any image is read
    rows, images = [], []
    for name in args.images:
        try:
            images.append(inference.read_image(name))
            rows.append({"image": name})
        except UserError as e:
            rows.append({"image": name, "error": str(e).removeprefix(f"{name}: ")})
    if images:
        runner = inference.load(path)
        logits = runner.predict(np.stack([im.pixels for im in images]))
        ok = iter(zip(images, logits))
        for row in rows:
            if "error" not in row:
                image, z = next(ok)
                top = inference.top_k(z, args.top)
                row["top"] = [{"class": c, "probability": round(p, 4)} for c, p in top]
                row["changes"] = image.changes or None
    if args.json:
        print(json.dumps({"model": str(path), "images": rows}, indent=2))
    else:
        print(_predict_table(path, rows))
    return 1 if any("error" in r for r in rows) else 0


def _predict_table(path: Path, rows: list[dict]) -> str:
    width = max(len(r["image"]) for r in rows)
    lines = [f"model {path}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['image']:<{width}}  error: {r['error']}")
            continue
        top = "  ".join(f"{t['class']} {t['probability']:.2f}" for t in r["top"])
        note = f"  ({r['changes']})" if r["changes"] else ""
        lines.append(f"{r['image']:<{width}}  {top}{note}")
    return "\n".join(lines)


def train_main(argv: Sequence[str] | None = None) -> int:
    configure_libraries()
    return train_command(train_parser().parse_args(argv))


def test_main(argv: Sequence[str] | None = None) -> int:
    configure_libraries()
    return test_command(test_parser().parse_args(argv))
