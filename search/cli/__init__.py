"""Command line: ``cifar10-search`` and the two front doors ``cifar10_train.py`` and
``cifar10_test.py``: parse, call, print. Every user error ends with a one-paragraph message
and exit status 2.

``common`` holds what every command shares (Ctrl-C, errors, shared options), ``runs`` the
train / retrain / test commands, ``studies`` the search commands. To add a command: its parser
and a ``*_command`` function in one of them, and a row in :func:`main`. To add an option: the
parser, and the settings or config it feeds (``Settings.from_options``, ``config_from_args``).

Each command imports the package's modules it runs inside its function: ``status``, ``plots``,
``--help`` and a bad option answer before Optuna, pandas or TensorFlow load
(``tests/test_study.py``: the commands that need no model import no TensorFlow).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from search.cli.common import configure_libraries
from search.cli.runs import (
    export_command,
    export_parser,
    predict_command,
    predict_parser,
    retrain_command,
    test_command,
    test_main,
    test_parser,
    train_command,
    train_main,
    train_parser,
)
from search.cli.studies import (
    dashboard_command,
    dashboard_parser,
    plots_command,
    plots_parser,
    start_command,
    start_parser,
    status_command,
    status_parser,
    worker_command,
    worker_parser,
)

__all__ = ["main", "program", "test_main", "train_main"]

RESTARTABLE = {"start", "worker"}  # commands whose worker may replace its process


def main(argv: Sequence[str] | None = None, *, restartable: bool = False) -> int:
    """``cifar10-search``. ``restartable``: this is the whole program (the console script,
    ``python -m search.cli``), so a worker may replace the process to free memory; a caller
    that embeds the command line (tests, notebooks) leaves it False."""
    import argparse

    configure_libraries()
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
        ("export", export_parser, export_command, "export a model to ONNX or LiteRT, checked"),
        ("predict", predict_parser, predict_command, "classify your own images"),
    ):
        sub.add_parser(name, parents=[parser()], add_help=False, help=help_).set_defaults(func=func)
    args = p.parse_args(argv)
    if args.command in RESTARTABLE:
        return args.func(args, restartable=restartable)
    return args.func(args)


def program() -> int:
    """The console script ``cifar10-search``."""
    return main(sys.argv[1:], restartable=True)
