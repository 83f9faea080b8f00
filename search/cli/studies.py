"""``cifar10-search start | worker | status | plots | dashboard``: search studies."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from search.cli.common import (
    add_context_options,
    add_data_option,
    add_quiet_option,
    add_study_options,
    context_from,
    guarded,
    parse_set,
)
from search.errors import UserError


def start_parser() -> argparse.ArgumentParser:
    from search.settings import (
        DEFAULTS,
        ENGINES,
        PRIORS,
        PRUNERS,
        QUICK,
        QUICK_STUDY,
        SAMPLERS,
        TUNERS,
    )

    p = argparse.ArgumentParser(
        prog="cifar10-search start",
        description="Start a search study, or continue one to its target number of trials.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a small study that ends in minutes on a 2-core CPU: "
        + ", ".join(f"{k}={v}" for k, v in {**QUICK, "study": QUICK_STUDY}.items()),
    )
    add_study_options(p, required=False)  # --quick names its own study
    add_quiet_option(p)
    p.add_argument("--space", metavar="FILE", help=f"space TOML (default {DEFAULTS['space']})")
    p.add_argument(
        "--set",
        dest="fixed",
        action="append",
        metavar="KEY=VALUE",
        help="fix a config key for every trial, as the space's [fixed] table does (e.g. --set "
        "schedule=wsd: rungs scored on cooldown branches)",
    )
    p.add_argument(
        "--trials", type=int, help=f"target number of trials (default {DEFAULTS['trials']})"
    )
    p.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds")
    p.add_argument("--epochs", type=int, help=f"epochs per trial (default {DEFAULTS['epochs']})")
    p.add_argument("--train-size", type=int, help="training images per trial (default: all 45,000)")
    p.add_argument(
        "--val-size", type=int, help=f"validation images (default {DEFAULTS['val_size']})"
    )
    p.add_argument(
        "--pruner",
        choices=PRUNERS,
        help="default: promote (pause at rungs, resume the best; the efficiency benchmark's "
        "pick), hyperband where configs keep state a pause cannot (ema, plateau, early_stop)",
    )
    p.add_argument(
        "--first-rung",
        type=int,
        metavar="R",
        help=f"--pruner promote: epochs to the first pause (default {DEFAULTS['first_rung']})",
    )
    p.add_argument(
        "--eta",
        type=int,
        help=f"--pruner promote: rungs at R, R*eta, ... and --epochs (less a rung within "
        f"sqrt(eta) of --epochs); the top 1/eta of a rung go on (default {DEFAULTS['eta']})",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help=f"--pruner promote: configs that reach the first rung before the first of them is "
        f"promoted (default {DEFAULTS['bootstrap']}; 0: as soon as the top 1/eta holds one)",
    )
    p.add_argument("--sampler", choices=SAMPLERS)
    p.add_argument(
        "--startup-trials",
        type=int,
        metavar="N",
        help=f"random trials before TPE models the space (default {DEFAULTS['startup_trials']})",
    )
    p.add_argument(
        "--prior",
        choices=PRIORS,
        help="where the random start-up draws come from: near the space's base config (the "
        "default for TPE) or uniform over the space (the default otherwise); see search/prior.py",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--engine", choices=ENGINES, help="search engine (default optuna)")
    p.add_argument(
        "--tuner",
        choices=TUNERS,
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
    add_data_option(p)
    add_context_options(p)
    return p


@guarded
def start_command(args: argparse.Namespace, *, restartable: bool = False) -> int:
    from search import report, settings, storage, worker
    from search.data import resolve_source
    from search.record import count_live

    name = args.study or (settings.QUICK_STUDY if args.quick else None)
    if name is None:
        raise UserError("start needs --study NAME (or --quick for a small demo study).")
    storage.check_name(name)
    options = {k: getattr(args, k) for k in settings.DEFAULTS}
    if options["fixed"] is not None:
        options["fixed"] = parse_set(options["fixed"])
    context = context_from(args)
    s = settings.Settings.from_options(
        quick=args.quick, timeout=args.timeout, started_at=context.started_at, **options
    )
    if s.engine == "kerastuner" and args.jobs > 1:
        raise UserError("--jobs runs Optuna workers; the KerasTuner engine runs in one process.")
    source = resolve_source(args.data)
    study, s = settings.create_or_resume(
        name,
        args.storage,
        s,
        given=settings.given_options(options, quick=args.quick, timeout=args.timeout),
        enqueue_seed=args.enqueue_seed and s.engine == "optuna",  # KerasTuner picks its own
    )
    url = storage.storage_url(name, args.storage)
    left = settings.remaining(study, s)
    print(
        f"study {name}: {count_live(study)} trials so far, target {s.trials}, "
        f"{max(left, 0)} to run{settings.held_back(study, s)}; storage {storage.redact(url)}",
        flush=True,
    )
    if left > 0 and args.jobs <= 1:
        worker.run_worker(
            name, args.storage, source, context=context, recycle=restartable, quiet=args.quiet
        )
    elif left > 0:
        worker.spawn_workers(
            name, args.storage, source, args.jobs, context.started_at, quiet=args.quiet
        )
    study, s = settings.load(name, args.storage)
    print(report.summary(study, s, time.time() - context.started_at))
    if args.plots:
        from search import plots

        print(f"report: {plots.write_all(study, s)}")
    print(f"results: {storage.study_dir(name)}/")
    return 0


def worker_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10-search worker",
        description="Join an existing study and run trials until its stored target is reached.",
    )
    add_study_options(p)
    add_data_option(p)
    add_quiet_option(p)
    add_context_options(p)
    return p


@guarded
def worker_command(args: argparse.Namespace, *, restartable: bool = False) -> int:
    from search.data import resolve_source
    from search.worker import run_worker

    source = resolve_source(args.data)
    context = context_from(args)
    run_worker(
        args.study, args.storage, source, context=context, recycle=restartable, quiet=args.quiet
    )
    return 0


def status_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10-search status",
        description="The study's trials as a table, and its best trial.",
    )
    add_study_options(p)
    return p


@guarded
def status_command(args: argparse.Namespace) -> int:
    from search.report import status_text
    from search.settings import load

    print(status_text(*load(args.study, args.storage)))
    return 0


def plots_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10-search plots",
        description="Write trials.csv, the figures and report.html into results/NAME/.",
    )
    add_study_options(p)
    p.add_argument("--out", type=Path, help="folder (default results/NAME/)")
    return p


@guarded
def plots_command(args: argparse.Namespace) -> int:
    from search import plots
    from search.settings import load

    study, settings = load(args.study, args.storage)
    report = plots.write_all(study, settings, args.out)
    print(f"wrote {report.parent}/: trials.csv, report.html and one HTML file per figure")
    return 0


def dashboard_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar10-search dashboard",
        description="Serve optuna-dashboard for the study's storage on localhost.",
    )
    add_study_options(p)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    return p


@guarded
def dashboard_command(args: argparse.Namespace) -> int:
    from search.settings import load
    from search.storage import redact, storage_url

    try:
        import optuna_dashboard
    except ImportError:
        raise UserError(
            "optuna-dashboard is not installed: pip install 'cifar10-search[dashboard]' "
            "(or pip install optuna-dashboard)."
        ) from None
    study, _ = load(args.study, args.storage)
    url = storage_url(args.study, args.storage)
    print(
        f"optuna-dashboard for {redact(url)} on http://{args.host}:{args.port}/ (Ctrl-C to stop)",
        flush=True,
    )
    optuna_dashboard.run_server(study._storage, host=args.host, port=args.port)
    return 0
