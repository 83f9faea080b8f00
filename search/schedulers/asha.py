"""Asynchronous successive halving of the promotion type (ASHA; Li et al. 2020, "A System for
Massively Parallel Hyperparameter Tuning"): the pure decision logic, no Optuna and no Keras.

A trial trains to the first rung and pauses there. A free worker first asks
:func:`next_promotion` for a paused trial worth resuming (from its checkpoint) to the next rung;
only when there is none does it start a new config. The records it decides on are plain
:class:`Entry` values, so a worker can build them from whatever its storage keeps (for Optuna:
a trial's number, its intermediate value at each rung epoch, and a "promoted from rung r" mark).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def rungs(r: int, eta: int, max_epochs: int, trim: bool = True) -> list[int]:
    """The epochs a trial pauses at: ``r, r*eta, r*eta**2, ...`` below ``max_epochs``, then
    ``max_epochs`` itself (``rungs(1, 3, 6) == [1, 3, 6]``, ``rungs(1, 2, 6) == [1, 2, 4, 6]``).

    With ``trim`` (new studies), a rung that sits less than ``sqrt(eta)`` below the top is
    dropped, unless it is the first: ``rungs(1, 3, 4) == [1, 4]``, not ``[1, 3, 4]``. A rung
    just below the top costs a whole level of promotions (eta configs must reach it before one
    is completed) for one more epoch of information; Hyperband's brackets, geometric from the
    top, have no such rung. On the cheap replay task (4-epoch trials) the untrimmed ladder had
    no complete trial by epoch 12 in most orders (benchmarks/replay.py)."""
    if eta < 2:
        raise ValueError(f"eta (the reduction factor) must be at least 2, not {eta}")
    if r < 1:
        raise ValueError(f"r (the first rung, in epochs) must be at least 1, not {r}")
    if r > max_epochs:
        raise ValueError(f"r (the first rung, {r} epochs) must not exceed max_epochs, {max_epochs}")
    out, x = [], r
    while x < max_epochs:
        out.append(x)
        x *= eta
    if trim and len(out) > 1 and max_epochs < out[-1] * math.sqrt(eta):
        out.pop()
    return [*out, max_epochs]


@dataclass(frozen=True)
class Entry:
    """A trial's record at a rung: its value (higher is better) after ``rung`` epochs, and
    whether it has already been promoted from there."""

    trial: int
    rung: int
    value: float
    promoted: bool = False


def rank_key(e: Entry) -> tuple[bool, float, int]:
    nan = math.isnan(e.value)
    return (nan, 0.0 if nan else -e.value, e.trial)  # best first; NaN last; ties: lower trial


def next_promotion(
    entries: Iterable[Entry], rung_list: Sequence[int], eta: int, bootstrap: int = 0
) -> Entry | None:
    """The paused trial to resume next, or None (then start a new config).

    The rule: rungs are scanned from the top rung below ``rung_list[-1]`` (the maximum) down to
    the first. At a rung with ``n`` entries (every trial that reached it, promoted or not), the
    entries are ranked by value, best first, ties broken by the lower trial number, NaN below
    every number; the promotable ones are the first ``n // eta`` of that ranking (none while
    ``n < eta``, nor at the first rung while ``n < bootstrap``: as Optuna's ``bootstrap_count``,
    the first promotion waits for a wider choice, as a synchronous Hyperband bracket does).
    The first rung that has a promotable entry not yet promoted and not NaN
    answers with the best such entry. Entries at other epochs (the maximum included) are
    ignored. Raises ValueError for a trial recorded twice at one rung.

    (syne-tune's ``PromotionRungSystem`` uses a linearly interpolated quantile as its cutoff
    instead; the count ``n // eta`` is the paper's ``top_k(rung, |rung| / eta)``.)
    """
    if eta < 2:
        raise ValueError(f"eta (the reduction factor) must be at least 2, not {eta}")
    by_rung: dict[int, list[Entry]] = {level: [] for level in rung_list[:-1]}
    seen: set[tuple[int, int]] = set()
    for e in entries:
        if e.rung in by_rung:
            if (e.trial, e.rung) in seen:
                raise ValueError(f"trial {e.trial} is recorded twice at rung {e.rung}")
            seen.add((e.trial, e.rung))
            by_rung[e.rung].append(e)
    for level in reversed(rung_list[:-1]):
        at = sorted(by_rung[level], key=rank_key)
        if level == rung_list[0] and len(at) < bootstrap:
            continue
        for e in at[: len(at) // eta]:
            if not e.promoted and not math.isnan(e.value):
                return e
    return None


def next_rung(rung_list: Sequence[int], rung: int) -> int:
    """The rung a trial paused at ``rung`` is promoted to."""
    return rung_list[rung_list.index(rung) + 1]
