"""Command line: ``cifar10-search`` and the two front doors ``cifar10_train.py`` and
``cifar10_test.py``. Every user error ends with a one-paragraph message and exit status 2."""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from search import STOP
from search.config import Config, preset
from search.errors import ConfigError, TestSplitGuardError, UserError


def _guarded(main: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Run a command; turn user errors and Ctrl-C into a message and an exit status."""

    @functools.wraps(main)
    def run(args: argparse.Namespace) -> int:
        STOP.clear()
        previous = signal.getsignal(signal.SIGINT)
        previous_hook = sys.unraisablehook
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, _on_sigint)
            sys.unraisablehook = _quiet_interrupts
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
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, previous)
                sys.unraisablehook = previous_hook

    return run


def _quiet_interrupts(unraisable) -> None:
    """A Ctrl-C that lands where Python ignores exceptions (a weakref callback, a __del__)
    needs no traceback: STOP is set and training stops at the next batch."""
    if not issubclass(unraisable.exc_type, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def _on_sigint(signum, frame) -> None:
    """Ctrl-C: raise KeyboardInterrupt, and leave a flag for training and the worker loop in
    case the exception lands where Python ignores it."""
    STOP.set()
    raise KeyboardInterrupt


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
    g.add_argument(
        "--preset",
        default="seed",
        help="a named config: seed (default), historical (the hand-tuned model as it was, "
        "heavier dropout), resnet20 or fast",
    )
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
        "--epoch-factor",
        type=float,
        default=None,
        help="epochs = the search's epochs times this (default 3), unless --epochs",
    )
    return p


@_guarded
def train_command(args: argparse.Namespace) -> int:
    from search.data import resolve_source
    from search.runs import new_run_dir, train_run

    if args.study:
        return _retrain(args)
    for opt in ("trial", "epoch_factor"):
        if getattr(args, opt) is not None:
            raise UserError(f"--{opt.replace('_', '-')} goes with --study NAME.")
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


@_guarded
def retrain_command(args: argparse.Namespace) -> int:
    if not args.study:
        raise UserError("retrain needs --study NAME (to train a preset or config, use train).")
    return _retrain(args)


def _retrain(args: argparse.Namespace) -> int:
    from search import final
    from search.data import resolve_source

    clash = [
        o for o in ("config", "set", "train_size", "val_size", "seed", "out") if getattr(args, o)
    ]
    if clash or args.full or args.preset != "seed":
        raise UserError(
            "--study retrains the trial's own config on all training images; it does not take "
            + ", ".join(f"--{o.replace('_', '-')}" for o in clash or ["preset/--full"])
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
        verbose=not args.quiet,
    )
    print(f"retrained: test it once with 'python cifar10_test.py --study {args.study}'")
    print(out)
    return 0


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
    _add_data_option(p)
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


@_guarded
def test_command(args: argparse.Namespace) -> int:
    from search.data import results_root
    from search.runs import TTA_REPORTS, evaluate_run, latest_run

    if args.study:
        from search import final

        if args.run:
            raise UserError("give --study NAME or --run DIR, not both.")
        runs = final.seed_runs(args.study)
        result = final.evaluate_final(args.study, _source_of(runs[0], args.data), tta=args.tta)
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
    r = evaluate_run(run, _source_of(run, args.data), tta=args.tta)
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


def _source_of(run: Path, data: str | None):
    """The test images' source: --data, else $CIFAR10_DATA, else the source the run was
    trained from (recorded in its train.json), else Keras' download."""
    import os

    from search.data import resolve_source

    if not data and not os.environ.get("CIFAR10_DATA") and (run / "train.json").exists():
        recorded = json.loads((run / "train.json").read_text()).get("data_source", "")
        if recorded and Path(recorded).exists():
            print(f"data: {recorded} (the run's own source)")
            return resolve_source(recorded)
    return resolve_source(data)


def train_main(argv: Sequence[str] | None = None) -> int:
    return train_command(train_parser().parse_args(argv))


def test_main(argv: Sequence[str] | None = None) -> int:
    return test_command(test_parser().parse_args(argv))


# --- search studies -----------------------------------------------------------------------

QUICK = dict(space="seed", trials=6, epochs=3, train_size=3000, val_size=1000, study="quick")
DEFAULTS = dict(
    space="default",
    trials=30,
    epochs=8,
    train_size=None,
    val_size=5000,
    pruner="hyperband",
    sampler="tpe",
    seed=0,
    engine="optuna",
    tuner="hyperband",
    epoch_budget=None,
    startup_trials=10,
)


def resolve_space_path(value: str) -> Path:
    """A space file: a path, or a bare name looked up in ./spaces/ then the project's spaces/."""
    p = Path(value)
    if p.exists() or p.suffix:
        return p
    for root in (Path("spaces"), Path(__file__).resolve().parents[1] / "spaces"):
        if (root / f"{value}.toml").exists():
            return root / f"{value}.toml"
    return p


def _add_study_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--study", required=required, metavar="NAME", help="letters, digits, - _ .")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="database URL (postgresql://user@host/db) or journal file; default: "
        "results/NAME/study.log. Passwords come from CIFAR10_STORAGE_PASSWORD(_FILE)",
    )


def start_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10-search start",
        description="Start a search study, or continue one to its target number of trials.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a small study that ends in minutes on a 2-core CPU: "
        + ", ".join(f"{k}={v}" for k, v in QUICK.items()),
    )
    _add_study_options(p, required=False)  # --quick names its own study
    p.add_argument("--space", metavar="FILE", help=f"space TOML (default {DEFAULTS['space']})")
    p.add_argument(
        "--trials", type=int, help=f"target number of trials (default {DEFAULTS['trials']})"
    )
    p.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds")
    p.add_argument("--epochs", type=int, help=f"epochs per trial (default {DEFAULTS['epochs']})")
    p.add_argument("--train-size", type=int, help="training images per trial (default: all 45,000)")
    p.add_argument(
        "--val-size", type=int, help=f"validation images (default {DEFAULTS['val_size']})"
    )
    p.add_argument("--pruner", choices=["hyperband", "asha", "median", "none"])
    p.add_argument("--sampler", choices=["tpe", "random", "cmaes"])
    p.add_argument(
        "--startup-trials",
        type=int,
        metavar="N",
        help=f"random trials before TPE models the space (default {DEFAULTS['startup_trials']})",
    )
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--engine", choices=["optuna", "kerastuner"], help="search engine (default optuna)"
    )
    p.add_argument(
        "--tuner",
        choices=["hyperband", "bayesian", "random"],
        help="KerasTuner's tuner, with --engine kerastuner (default hyperband)",
    )
    p.add_argument(
        "--epoch-budget",
        type=int,
        metavar="E",
        help="start no trial once E epochs were trained in all (a compute budget)",
    )
    p.add_argument("--jobs", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument(
        "--no-enqueue-seed",
        dest="enqueue_seed",
        action="store_false",
        help="do not run the space's base config as trial 0",
    )
    p.add_argument("--no-plots", dest="plots", action="store_false")
    _add_data_option(p)
    return p


def _settings_from_args(args: argparse.Namespace) -> tuple[str, object, set[str]]:
    from search.space import load_space
    from search.study import Settings

    values = {**DEFAULTS, **(QUICK if args.quick else {})}
    given = set()
    keys = (
        "space",
        "trials",
        "epochs",
        "train_size",
        "val_size",
        "pruner",
        "sampler",
        "seed",
        "engine",
        "tuner",
        "epoch_budget",
        "startup_trials",
    )
    for key in keys:
        v = getattr(args, key)
        if v is not None:
            values[key] = v
            given.add(key)
    if args.quick:
        given |= {"space", "epochs", "train_size", "val_size"}
    name = args.study or (QUICK["study"] if args.quick else None)
    if name is None:
        raise UserError("start needs --study NAME (or --quick for a small demo study).")
    if values["trials"] < 1:
        raise UserError(f"--trials must be at least 1, got {values['trials']}.")
    if values["startup_trials"] < 0:
        raise UserError(f"--startup-trials must be 0 or more, got {values['startup_trials']}.")
    space = load_space(resolve_space_path(str(values["space"])))
    base = space.base.replace(  # the split and epochs must make a valid config
        epochs=values["epochs"], train_size=values["train_size"], val_size=values["val_size"]
    )
    if values["val_size"] < 1:
        raise UserError("a search needs validation images: --val-size must be at least 1.")
    deadline = None
    if args.timeout is not None:
        deadline = __import__("time").time() + args.timeout
        given.add("deadline")
    s = Settings(
        space_path=str(space.path),
        space_text=space.text,
        trials=values["trials"],
        epochs=base.epochs,
        train_size=base.train_size,
        val_size=base.val_size,
        pruner=values["pruner"],
        sampler=values["sampler"],
        seed=values["seed"],
        deadline=deadline,
        engine=values["engine"],
        tuner=values["tuner"],
        epoch_budget=values["epoch_budget"],
        startup_trials=values["startup_trials"],
    )
    if s.engine == "kerastuner" and args.jobs > 1:
        raise UserError("--jobs runs Optuna workers; the KerasTuner engine runs in one process.")
    if "tuner" in given and s.engine != "kerastuner":
        raise UserError("--tuner goes with --engine kerastuner (Optuna uses --sampler/--pruner).")
    if "space" in given:
        given.add("space_text")
    given.discard("space")
    return name, s, given


@_guarded
def start_command(args: argparse.Namespace) -> int:
    import os
    import subprocess
    import time

    from search import study as st
    from search.data import resolve_source

    name, settings, given = _settings_from_args(args)
    st.check_name(name)
    source = resolve_source(args.data)
    study, settings = st.create_or_resume(
        name,
        args.storage,
        settings,
        given=given,
        enqueue_seed=args.enqueue_seed and settings.engine == "optuna",  # KerasTuner picks its own
    )
    url = st.storage_url(name, args.storage)
    left = st.remaining(study, settings)
    print(
        f"study {name}: {st.count_live(study)} trials so far, target {settings.trials}, "
        f"{max(left, 0)} to run; storage {st._redact(url)}",
        flush=True,
    )
    # wall time of the whole command, across the worker's restarts (see study.RECYCLE_MB)
    t0 = float(os.environ.pop("CIFAR10_STARTED_AT", time.time()))
    if left > 0 and args.jobs <= 1:
        os.environ["CIFAR10_STARTED_AT"] = str(t0)  # what a restarted process inherits
        try:
            st.run_worker(name, args.storage, source, recycle=args.as_program)
        finally:
            os.environ.pop("CIFAR10_STARTED_AT", None)
    elif left > 0:
        cmd = [sys.executable, "-m", "search.cli", "worker", "--study", name]
        if args.storage:
            cmd += ["--storage", args.storage]
        if source.path is not None:
            cmd += ["--data", str(source.path)]
        env = {**os.environ, "CIFAR10_WORKERS": str(args.jobs)}
        procs = [
            subprocess.Popen([*cmd, "--worker-index", str(i)], env=env) for i in range(args.jobs)
        ]
        try:
            codes = [p.wait() for p in procs]
        except KeyboardInterrupt:
            for p in procs:
                p.send_signal(__import__("signal").SIGINT)
            for p in procs:
                p.wait()
            raise
        if any(codes):
            raise UserError(f"worker exit codes {codes}; see their messages above.")
    study, settings = st.load(name, args.storage)
    print(st.summary(study, settings, time.time() - t0))
    if args.plots:
        _write_plots(study, settings)
    print(f"results: {st.study_dir(name)}/")
    return 0


def _write_plots(study, settings) -> None:
    from search import plots

    report = plots.write_all(study, settings)
    print(f"report: {report}")


def worker_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10-search worker",
        description="Join an existing study and run trials until its stored target is reached.",
    )
    _add_study_options(p)
    _add_data_option(p)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    return p


@_guarded
def worker_command(args: argparse.Namespace) -> int:
    import os

    from search import study as st
    from search.data import resolve_source

    os.environ["CIFAR10_WORKER"] = str(args.worker_index)
    source = resolve_source(args.data)
    st.run_worker(
        args.study, args.storage, source, worker=args.worker_index, recycle=args.as_program
    )
    return 0


def status_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10-search status",
        description="The study's trials as a table, and its best trial.",
    )
    _add_study_options(p)
    return p


@_guarded
def status_command(args: argparse.Namespace) -> int:
    import pandas as pd

    from search import study as st

    study, settings = st.load(args.study, args.storage)
    df = st.trials_frame(study, settings.space())
    cols = ["number", "state", "end", "value", "n_params", "latency_p50_ms", "epochs", "seconds"]
    cols += [c for c in df.columns if c.startswith("param_")]
    with pd.option_context(
        "display.max_rows",
        None,
        "display.width",
        200,
        "display.max_columns",
        None,
        "display.precision",
        4,
    ):
        print(df[cols].rename(columns=lambda c: c.removeprefix("param_")).to_string(index=False))
    print()
    print(st.summary(study, settings))
    try:
        best = st.best_feasible(study)
        print("best config:")
        print(json.dumps(best.user_attrs.get("config", {}), indent=2))
    except UserError:
        pass
    return 0


def plots_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10-search plots",
        description="Write trials.csv, the figures and report.html into results/NAME/.",
    )
    _add_study_options(p)
    p.add_argument("--out", type=Path, help="folder (default results/NAME/)")
    return p


@_guarded
def plots_command(args: argparse.Namespace) -> int:
    from search import plots
    from search import study as st

    study, settings = st.load(args.study, args.storage)
    report = plots.write_all(study, settings, args.out)
    print(f"wrote {report.parent}/: trials.csv, report.html and one HTML file per figure")
    return 0


def dashboard_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10-search dashboard",
        description="Serve optuna-dashboard for the study's storage on localhost.",
    )
    _add_study_options(p)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    return p


@_guarded
def dashboard_command(args: argparse.Namespace) -> int:
    from search import study as st

    try:
        import optuna_dashboard
    except ImportError:
        raise UserError(
            "optuna-dashboard is not installed: pip install 'cifar10-search[dashboard]' "
            "(or pip install optuna-dashboard)."
        ) from None
    study, _ = st.load(args.study, args.storage)
    url = st.storage_url(args.study, args.storage)
    print(
        f"optuna-dashboard for {st._redact(url)} on http://{args.host}:{args.port}/ "
        f"(Ctrl-C to stop)",
        flush=True,
    )
    optuna_dashboard.run_server(study._storage, host=args.host, port=args.port)
    return 0


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
    for name, parser, func, help_ in (
        ("start", start_parser, start_command, "start or continue a search study"),
        ("worker", worker_parser, worker_command, "join a study and run its trials"),
        ("status", status_parser, status_command, "a study's trials and best config"),
        ("retrain", train_parser, retrain_command, "retrain a study's best trial (--study NAME)"),
        ("plots", plots_parser, plots_command, "write a study's figures and report.html"),
        ("dashboard", dashboard_parser, dashboard_command, "serve optuna-dashboard"),
    ):
        sub.add_parser(name, parents=[parser()], add_help=False, help=help_).set_defaults(func=func)
    args = p.parse_args(argv)
    args.as_program = argv is None  # the whole program: it may restart itself (see start)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
