"""cifar10-search: find, train and prove a small, fast CIFAR-10 classifier."""

from __future__ import annotations

import os

# Quiet TensorFlow's C++ start-up chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

import logging  # noqa: E402
import warnings  # noqa: E402

# TensorFlow's retracing notices and Optuna's "experimental" notices say nothing a user can act on.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message=r".*(is an experimental feature|is experimental \().*")

import threading  # noqa: E402

# Set by the command line's Ctrl-C handler. A KeyboardInterrupt can land where Python ignores it
# (inside a finaliser); training checks this after every batch and the worker loop before every
# trial, so Ctrl-C always stops them.
STOP = threading.Event()
