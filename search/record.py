"""The trial record: how a trial ended, the attribute keys it carries, and reading them back.

Every module that writes or reads a trial's attributes uses these names: the objective, the
worker, the report, the plots, the final retrain and the benchmarks. To add a way a trial can
end: a member of :class:`End`, the objective (or worker) code that sets it, and its style in
``plots.END_STYLE`` if it should stand out.
"""

from __future__ import annotations

from enum import StrEnum

import optuna
from optuna.trial import FrozenTrial, TrialState


class End(StrEnum):
    """How a trial ended (the ``end`` attribute; ``end_detail`` says more)."""

    COMPLETE = "complete"  # trained to the study's epochs: its value stands for its config
    PRUNED = "pruned"  # stopped early by the pruner or the tuner's schedule
    OVER_BUDGET = "over_budget"  # refused after building: too many parameters or too slow
    DIVERGED = "diverged"  # the loss stopped being finite
    ERROR = "error"  # raised: the detail holds the reason and a short traceback
    INTERRUPTED = "interrupted"  # Ctrl-C
    LOST = "lost"  # its worker died (killed, out of memory, machine lost)
    SURPLUS = "surplus"  # other workers had already filled the study's target


class Attr:
    """User-attribute keys of a trial."""

    END = "end"
    END_DETAIL = "end_detail"
    CONFIG = "config"  # the whole frozen config, as a dict
    N_PARAMS = "n_params"
    LATENCY_P50 = "latency_p50_ms"
    LATENCY_P95 = "latency_p95_ms"
    EPOCHS = "epochs"  # epochs trained in this trial
    TRAIN_SECONDS = "train_seconds"
    SECONDS = "seconds"  # the whole trial, building and budget check included
    WORKER = "worker"
    RESTARTS = "process_restarts"
    RSS_MB = "rss_mb"
    HOST = "host"
    PID = "pid"
    ENQUEUED = "enqueued"
    RETRY_OF = "retry_of"  # a lost trial's parameters, tried once more
    ENGINE = "engine"
    INITIAL_EPOCH = "initial_epoch"


# Trials that count towards a study's target. Queued (WAITING) ones do not: the next worker to
# ask for a trial takes them, within the target.
LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
LOST_PREFIX = "lost:"  # a study attribute per lost trial: its reason (the trial was finished)


def lost_trials(study: optuna.Study) -> dict[int, str]:
    """Why each trial lost by heartbeat was lost (kept on the study: see ``storage``)."""
    n = len(LOST_PREFIX)
    return {int(k[n:]): v for k, v in study.user_attrs.items() if k.startswith(LOST_PREFIX)}


def end_of(t: FrozenTrial, lost: dict[int, str] | None = None) -> tuple[str, str]:
    """How a trial ended and the detail: an :class:`End`, or its bare state while it runs."""
    if Attr.END in t.user_attrs and t.state != TrialState.RUNNING:
        return End(t.user_attrs[Attr.END]), t.user_attrs.get(Attr.END_DETAIL, "")
    if lost and t.number in lost:
        return End.LOST, lost[t.number]
    return t.state.name.lower(), ""


def count_live(study: optuna.Study, before: int | None = None) -> int:
    """Trials that count towards the target: finished (complete or pruned) or running; with
    ``before``, only those numbered below it."""
    trials = study.get_trials(deepcopy=False, states=LIVE)
    return sum(1 for t in trials if before is None or t.number < before)


def epochs_trained(trials: list[FrozenTrial]) -> int:
    return sum(int(t.user_attrs.get(Attr.EPOCHS, 0)) for t in trials)


def best_complete(study: optuna.Study) -> FrozenTrial:
    """The complete trial with the highest validation accuracy (over-budget trials never
    complete); the earlier one of a tie."""
    from search.errors import UserError

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise UserError(f"study {study.study_name!r} has no complete trial yet.")
    return max(done, key=lambda t: (t.value, -t.number))
