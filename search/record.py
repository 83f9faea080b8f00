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

from search.errors import UserError


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
    PAUSED = "paused"  # --pruner promote: stopped at a rung, its checkpoint kept to resume
    PROMOTED = "promoted"  # a paused segment whose config a later segment resumed


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
    ENQUEUED = "enqueued"  # why the study queued it: BASE_CONFIG for the space's base config
    RETRY_OF = "retry_of"  # a lost trial's parameters, tried once more
    ENGINE = "engine"
    INITIAL_EPOCH = "initial_epoch"
    # --pruner promote: a config trains in segments, one trial each, rung to rung
    RESUME_OF = "resume_of"  # the paused segment this one continues (absent: a new config)
    START = "start_epoch"  # epochs its config had trained before this segment
    RUNG = "rung"  # the epoch this segment trains to
    CHECKPOINT = "checkpoint"  # the artifact holding a paused segment's training state
    # wsd: the epochs (a fraction) of the cooldown branch that scored the segment's rung; its
    # intermediate value at the rung epoch is the branch's score, not the trunk's
    COOLDOWN_EPOCHS = "cooldown_epochs"
    # a complete trial's validation accuracy at each TTA level (plain, flip, flip_shift): the
    # race takes a trial that ran its run from the study, and chooses its TTA, with no model
    VAL_TTA = "val_accuracy_tta"
    # a sampled config a complete trial already ran: that trial's number (its value, no training)
    SAME_AS = "same_as"


BASE_CONFIG = "base config of the space"  # trial 0 of a new study (settings.create_or_resume)

# Trials that count towards a study's target. Queued (WAITING) ones do not: the next worker to
# ask for a trial takes them, within the target.
LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
LOST_PREFIX = "lost:"  # a study attribute per lost trial: its reason (the trial was finished)


def lost_trials(study: optuna.Study) -> dict[int, str]:
    """Why each trial lost by heartbeat was lost (kept on the study: see ``storage``)."""
    n = len(LOST_PREFIX)
    return {int(k[n:]): v for k, v in study.user_attrs.items() if k.startswith(LOST_PREFIX)}


DONE = (TrialState.COMPLETE, TrialState.PRUNED)  # a finished trial, whatever it scored
GOING_ON = (TrialState.WAITING, TrialState.RUNNING, *DONE)  # queued, running or finished


def continued(trials: list[FrozenTrial], states: tuple[TrialState, ...]) -> set[int]:
    """Paused segments with a later segment (``resume_of``) in one of ``states``."""
    return {
        t.user_attrs[Attr.RESUME_OF]
        for t in trials
        if Attr.RESUME_OF in t.user_attrs and t.state in states
    }


def promoted(trials: list[FrozenTrial]) -> set[int]:
    """Paused segments whose config goes on in a later segment (queued, running or done; a
    lost one does not count: its parent is promotable again)."""
    return continued(trials, GOING_ON)


def end_of(
    t: FrozenTrial, lost: dict[int, str] | None = None, going_on: set[int] | None = None
) -> tuple[str, str]:
    """How a trial ended and the detail: an :class:`End`, or its bare state while it runs.
    ``going_on`` (from :func:`promoted`) tells a promoted segment from a paused one."""
    if Attr.END in t.user_attrs and t.state != TrialState.RUNNING:
        end = End(t.user_attrs[Attr.END])
        if end == End.PAUSED and going_on and t.number in going_on:
            end = End.PROMOTED
        return end, t.user_attrs.get(Attr.END_DETAIL, "")
    if lost and t.number in lost:
        return End.LOST, lost[t.number]
    return t.state.name.lower(), ""


def is_new_config(t: FrozenTrial) -> bool:
    """A trial that sampled a config (every trial, except the later segments of a promoted
    config): what the study's target counts."""
    return Attr.RESUME_OF not in t.user_attrs


def root_of(t: FrozenTrial, by_number: dict[int, FrozenTrial]) -> int:
    """The number of the trial that sampled ``t``'s config (itself, unless a segment)."""
    while Attr.RESUME_OF in t.user_attrs:
        t = by_number[t.user_attrs[Attr.RESUME_OF]]
    return t.number


def chains(trials: list[FrozenTrial]) -> dict[int, list[FrozenTrial]]:
    """Each config's trials, by the number of the one that sampled it: one trial per config,
    except under ``--pruner promote``, where a config is its segments, in order."""
    by_number = {t.number: t for t in trials}
    out: dict[int, list[FrozenTrial]] = {}
    for t in trials:
        out.setdefault(root_of(t, by_number), []).append(t)
    return out


def ends(study: optuna.Study) -> dict[int, tuple[str, str]]:
    """:func:`end_of` for every trial of the study (promoted segments told apart)."""
    trials = study.get_trials(deepcopy=False)
    lost, going_on = lost_trials(study), promoted(trials)
    return {t.number: end_of(t, lost, going_on) for t in trials}


def count_live(study: optuna.Study, before: int | None = None) -> int:
    """Configs that count towards the target: finished (complete or pruned) or running; with
    ``before``, only those numbered below it."""
    trials = study.get_trials(deepcopy=False, states=LIVE)
    return sum(1 for t in trials if is_new_config(t) and (before is None or t.number < before))


def epochs_trained(trials: list[FrozenTrial]) -> int | float:
    """Epochs trained by these trials, cooldown branches included (each counted once): an
    int unless a branch made it a fraction."""
    total = sum(trial_epochs(t) for t in trials)
    return int(total) if float(total).is_integer() else round(total, 2)


def trial_epochs(t: FrozenTrial) -> int | float:
    """Epochs one trial trained: its epochs, plus its cooldown branch's (wsd rungs)."""
    epochs = int(t.user_attrs.get(Attr.EPOCHS, 0))
    cooldown = float(t.user_attrs.get(Attr.COOLDOWN_EPOCHS, 0))
    return epochs + cooldown if cooldown else epochs


def best_complete(study: optuna.Study) -> FrozenTrial:
    """The complete trial with the highest validation accuracy (over-budget trials never
    complete); the earlier one of a tie."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise UserError(f"study {study.study_name!r} has no complete trial yet.")
    return max(done, key=lambda t: (t.value, -t.number))
