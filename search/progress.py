"""Progress bars where a person watches a terminal, today's plain lines everywhere else.

Bars (tqdm) go to stderr and only when stderr is a terminal: in CI, a log file or under
``nohup`` a command prints the same lines as ever. ``CIFAR10_PROGRESS=1`` or ``0`` forces them
on or off. Lines printed while bars are showing go through :func:`say`, which keeps the bars
below them. Training's bars are the :class:`search.callbacks.ProgressBars` callback; a study's
bar is :func:`study_bar`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from search import env

_disabled = False


@contextlib.contextmanager
def off(really: bool = True) -> Iterator[None]:
    """No bars while inside (``--quiet``)."""
    global _disabled
    before, _disabled = _disabled, _disabled or really
    try:
        yield
    finally:
        _disabled = before


def wanted() -> bool:
    """Whether to draw bars: never inside :func:`off`; forced by ``CIFAR10_PROGRESS``, else
    when stderr is a terminal."""
    if _disabled:
        return False
    forced = env.text("CIFAR10_PROGRESS")
    if forced is not None:
        return forced not in ("0", "false", "no", "off")
    return sys.stderr.isatty()


def bar(**kwargs):
    """A tqdm bar on stderr with this tool's defaults (redrawn at most twice a second)."""
    from tqdm import tqdm

    return tqdm(file=sys.stderr, dynamic_ncols=True, mininterval=0.5, **kwargs)


def say(line: str, file=None) -> None:
    """Print a line above any bars (a plain print when there are none)."""
    from tqdm import tqdm

    tqdm.write(line, file=file or sys.stdout)
    (file or sys.stdout).flush()


def study_bar(name: str, target: int, done: int):
    """Trials done of the study's target, best so far, elapsed and time left."""
    return bar(total=target, initial=min(done, target), desc=f"study {name}", unit="trial")
