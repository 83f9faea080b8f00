"""cifar10-search: find, train and prove a small, fast CIFAR-10 classifier.

Importing the package changes no global state (log levels, warning filters, environment):
the command line's entry points set TensorFlow and Optuna up for their users
(``search.cli.common.configure_libraries``).
"""

from __future__ import annotations

import threading

__version__ = "0.1.0"

# Set by the command line's Ctrl-C handler. A KeyboardInterrupt can land where Python ignores it
# (inside a finaliser); training checks this after every batch and the worker loop before every
# trial, so Ctrl-C always stops them.
STOP = threading.Event()
