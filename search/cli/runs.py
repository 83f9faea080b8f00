"""``cifar10_train.py``, ``cifar10_test.py`` and ``cifar10-search train | retrain | test``:
one config trained into a run folder, a study's trial retrained, a model tested once."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from search.cli.common import add_data_option, guarded, quiet
from search.config import Config, preset
from search.errors import ConfigError, UserError


def _parse_set(items: Sequence[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}.")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw  # a bare word is a string: --set activation=elu
    return out


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset or config file, then ``--set`` overrides, then the named options."""
    base = Config.from_json(args.config) if args.config else preset(args.preset or "seed")
    changes = _parse_set(args.set or [])
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
        help="first train the top K complete trials at the retrain's epochs on the train split "
        "and retrain the one that scores best on validation",
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
    for opt in ("trial", "epoch_factor", "race"):
        if getattr(args, opt) is not None:
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
        verbose=not args.quiet,
    )
    print(f"retrained: test it once with 'python cifar10_test.py --study {args.study}'")
    print(out)
    return 0


retrain_command = guarded(_retrain)


def test_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10_test.py",
        description="Evaluate a trained run once on the 10,000 held-out test images.",
    )
    p.add_argument("--run", type=Path, help="run folder (default: the newest under results/)")
    p.add_argument(
        "--study",
        metavar="NAME",
        help="evaluate the study's retrained seeds in results/NAME/final/",
    )
    add_data_option(p)
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
    from search.env import results_root
    from search.evaluate import TTA_REPORTS
    from search.runs import evaluate_run, latest_run, source_of

    if args.study:
        from search import final

        if args.run:
            raise UserError("give --study NAME or --run DIR, not both.")
        runs = final.seed_runs(args.study)
        result = final.evaluate_final(args.study, source_of(runs[0], args.data), tta=args.tta)
        print(final.describe(result))
        print(f"wrote {final.final_dir(args.study) / 'test_metrics.json'}")
        return 0
    run = args.run or latest_run()
    if run is None:
        raise UserError(
            f"no trained run found under {results_root()}/; train one with "
            f"'python cifar10_train.py' or name it with --run DIR."
        )
    if not (run / "model.keras").exists():
        raise UserError(f"{run} holds no model.keras; is it a finished run folder?")
    r = evaluate_run(run, source_of(run, args.data), tta=args.tta)
    print(f"run {run} (test evaluation number {r['test_evaluations']})")
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
    print(f"wrote {run / 'test_metrics.json'} and the confusion matrices")
    return 0


def train_main(argv: Sequence[str] | None = None) -> int:
    quiet()
    return train_command(train_parser().parse_args(argv))


def test_main(argv: Sequence[str] | None = None) -> int:
    quiet()
    return test_command(test_parser().parse_args(argv))
