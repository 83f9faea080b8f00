"""Command line: ``cifar10-search`` and the two front doors ``cifar10_train.py`` and
``cifar10_test.py``. Every user error ends with a one-paragraph message and exit status 2."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from search.config import Config, preset
from search.errors import ConfigError, TestSplitGuardError, UserError


def _guarded(main: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Run a command; turn user errors and Ctrl-C into a message and an exit status."""

    @functools.wraps(main)
    def run(args: argparse.Namespace) -> int:
        try:
            return main(args)
        except (UserError, TestSplitGuardError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(
                "\ninterrupted: finished work is kept; run the same command again to continue.",
                file=sys.stderr,
            )
            return 130

    return run


# --- configs from the command line ------------------------------------------------------


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
    base = Config.from_json(args.config) if args.config else preset(args.preset)
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
    g.add_argument("--preset", default="seed", help="seed (default), resnet20 or fast")
    g.add_argument("--config", metavar="FILE.json", help="a config saved by an earlier run")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key")
    p.add_argument("--epochs", type=int)
    p.add_argument("--train-size", type=int, help="train on a stratified subset of this size")
    p.add_argument("--val-size", type=int, help="validation images held out (default 5000)")
    p.add_argument("--seed", type=int)


def _add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="PATH",
        help="CIFAR-10 zip, image folder, .npz or cifar-10-batches-py folder "
        "(default: $CIFAR10_DATA, else Keras' download)",
    )


# --- train and test -----------------------------------------------------------------------


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10_train.py",
        description="Train a config on the train/validation split, or on all 50,000 training "
        "images with --full, into a run folder under results/.",
    )
    _add_config_options(p)
    _add_data_option(p)
    p.add_argument("--full", action="store_true", help="train on all 50,000 training images")
    p.add_argument("--out", type=Path, help="run folder (default: a new one under results/runs)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return p


@_guarded
def train_command(args: argparse.Namespace) -> int:
    from search.data import resolve_source
    from search.runs import new_run_dir, train_run

    config = config_from_args(args)
    source = resolve_source(args.data)
    out = args.out or new_run_dir(args.preset if not args.config else Path(args.config).stem)
    print(f"run folder: {out}", flush=True)
    info = train_run(config, source, out, verbose=not args.quiet)
    va = info["val_accuracy"]
    print(
        f"{info['status']}: {info['epochs']} epochs in {info['train_seconds']:.0f}s"
        + (f", validation accuracy {va:.4f}" if va is not None else "")
    )
    print(out)
    return 0


def test_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10_test.py",
        description="Evaluate a trained run once on the 10,000 held-out test images.",
    )
    p.add_argument("--run", type=Path, help="run folder (default: the newest under results/)")
    _add_data_option(p)
    tta = p.add_mutually_exclusive_group()
    tta.add_argument(
        "--tta",
        dest="tta",
        action="store_true",
        default=None,
        help="also report flip test-time augmentation",
    )
    tta.add_argument("--no-tta", dest="tta", action="store_false")
    return p


@_guarded
def test_command(args: argparse.Namespace) -> int:
    from search.data import resolve_source, results_root
    from search.runs import latest_run, test_run

    run = args.run or latest_run()
    if run is None:
        raise UserError(
            f"no trained run found under {results_root()}/; train one with "
            f"'python cifar10_train.py' or name it with --run DIR."
        )
    if not (run / "model.keras").exists():
        raise UserError(f"{run} holds no model.keras; is it a finished run folder?")
    r = test_run(run, resolve_source(args.data), tta_flip=args.tta)
    print(f"run {run} (test evaluation number {r['test_evaluations']})")
    print(
        f"test accuracy {r['accuracy']:.4f}"
        + (f"  (flip TTA {r['accuracy_tta_flip']:.4f})" if r["accuracy_tta_flip"] else "")
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
    return train_command(train_parser().parse_args(argv))


def test_main(argv: Sequence[str] | None = None) -> int:
    return test_command(test_parser().parse_args(argv))


# --- cifar10-search -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="cifar10-search",
        description="Search, train and test small, fast CIFAR-10 classifiers.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "train",
        parents=[train_parser()],
        add_help=False,
        help="train one config (as cifar10_train.py)",
    ).set_defaults(func=train_command)
    sub.add_parser(
        "test",
        parents=[test_parser()],
        add_help=False,
        help="evaluate a run on the test set (as cifar10_test.py)",
    ).set_defaults(func=test_command)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
