"""What every command shares: quieting the libraries, Ctrl-C and user errors turned into a
message and an exit status, the options several commands take."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence

from search import STOP, env
from search.errors import TestSplitGuardError, UserError


def parse_set(items: Sequence[str]) -> dict[str, object]:
    """``--set KEY=VALUE`` options as config keys: a value is JSON where it parses
    (``--set batch_size=64``), else a string (``--set schedule=wsd``)."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set takes KEY=VALUE, got {item!r}.")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def fast_kernels() -> None:
    """TensorFlow's oneDNN kernels, which TensorFlow turns on by itself only on CPUs with
    AVX-512; elsewhere (this project's AMD EPYC machines) its Eigen kernels train the seed CNN
    2.5x slower and fault in 100x the pages (``benchmarks/cpu_env.py``). A user's own
    ``TF_ENABLE_ONEDNN_OPTS`` is kept, and every process started after this inherits the
    choice. It takes effect only if TensorFlow has not been imported yet."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def configure_libraries() -> None:
    """What the command line sets for its users, and importing the package does not:
    :func:`fast_kernels`, and quiet. TensorFlow's C++ start-up chatter and retracing notices,
    Optuna's "experimental" notices and its per-trial log lines (our progress lines say what
    happened) stay out of the way. ``CIFAR10_VERBOSE=1`` keeps TensorFlow's start-up lines,
    for debugging."""
    fast_kernels()
    verbose = bool(env.text("CIFAR10_VERBOSE"))
    if not verbose:  # level 2 also hides the start-up lines' info-level ones
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not verbose and not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    experimental = r".*(is an experimental feature|is experimental \().*"
    warnings.filterwarnings("ignore", message=experimental)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)


class _QuietTensorFlow:
    """An import hook: while ``tensorflow`` first loads (whenever a command gets there), the
    process's stderr goes to /dev/null. Its C++ start-up lines ("All log messages before
    absl::InitializeLog()...", "oneDNN custom operations are on...") come from native code that
    neither TF_CPP_MIN_LOG_LEVEL nor Python's logging reaches."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and the real finders do the finding
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            from search.inference import native_stderr_silenced

            with native_stderr_silenced():
                load(module)

        spec.loader.exec_module = exec_module
        return spec


def guarded(main: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Run a command; turn user errors and Ctrl-C into a message and an exit status."""

    @functools.wraps(main)
    def run(args: argparse.Namespace, **kwargs) -> int:
        STOP.clear()
        previous = signal.getsignal(signal.SIGINT)
        previous_hook = sys.unraisablehook
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, _on_sigint)
            sys.unraisablehook = _quiet_interrupts
        try:
            env.check()
            return main(args, **kwargs)
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


def add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="PATH",
        help="CIFAR-10 zip, image folder, .npz or cifar-10-batches-py folder "
        "(default: $CIFAR10_DATA, else Keras' download)",
    )


def add_study_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--study", required=required, metavar="NAME", help="letters, digits, - _ .")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="database URL (postgresql://user@host/db) or journal file; default: "
        "results/NAME/study.log. Passwords come from CIFAR10_STORAGE_PASSWORD(_FILE)",
    )


def add_quiet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quiet", action="store_true", help="no per-trial lines or progress bars: the summary only"
    )


def add_context_options(p: argparse.ArgumentParser) -> None:
    """Hidden: a worker's context, passed by ``start --jobs`` and by a restarting worker."""
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--restarts", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--started-at", type=float, default=None, help=argparse.SUPPRESS)


def context_from(args: argparse.Namespace):
    from search.objective import WorkerContext

    return WorkerContext(
        index=args.worker_index,
        count=args.workers,
        restarts=args.restarts,
        started_at=args.started_at or time.time(),
    )
