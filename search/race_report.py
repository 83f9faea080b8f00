"""What a race says in words: the pick against the space's base config, and whether the
search's scores ordered the raced configs as the race at full length did (lines for the test
report, from the race's record alone); and the search's word on each raced trial, which the
race records beside its own."""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState

from search.evaluate import TTA_NAMES
from search.record import Attr


def _last_report(t: optuna.trial.FrozenTrial) -> tuple[int, float]:
    """The epoch and score of a trial's last report (0 and NaN before its first)."""
    return max(t.intermediate_values.items(), default=(0, math.nan))


def search_outcome(t: optuna.trial.FrozenTrial) -> str:
    """What the search made of a trial, in words."""
    if t.state == TrialState.COMPLETE:
        return f"search value {t.value:.4f}"
    step, value = _last_report(t)
    return f"stopped by the search at {value:.4f} after {step} epochs"


def search_score(t: optuna.trial.FrozenTrial) -> dict:
    """The search's last word on a trial, complete or stopped at a rung: its score, the
    epochs it had then, and the training images and schedule it had them on (what the race
    checks at full length, and what its report suggests when they disagree)."""
    step, value = _last_report(t)
    if t.state == TrialState.COMPLETE:
        value = t.value
    config = t.user_attrs.get(Attr.CONFIG, {})
    return {
        "search_score": value if math.isfinite(value) else None,
        "search_epochs": step,
        "search_train_size": config.get("train_size"),  # None: all but the validation images
        "search_schedule": config.get("schedule"),
    }


def against_base(race: dict | None) -> list[str]:
    """The race's pick against the space's base config, on validation (lines for
    ``final.describe``; none when the race did not include the base)."""
    rows = {r["trial"]: r for r in (race or {}).get("candidates", [])}
    base = next((r for r in rows.values() if r.get("base")), None)
    if base is None:
        return []
    pick = rows[race["winner"]]
    where = f"validation after {race['epochs']} epochs on {race['train_images']:,} images"
    if pick is base:
        lines = [f"race ({where}): the space's base config (trial {base['trial']}) won, "
                 f"{base['score']:.4f}: the search found nothing better"]  # fmt: skip
    else:
        gap = pick["score"] - base["score"]
        lines = [
            f"race ({where}): trial {pick['trial']} {pick['score']:.4f} against the space's "
            f"base config (trial {base['trial']}) {base['score']:.4f}: {100 * gap:+.2f} points"
        ]
    return lines + rung_check(list(rows.values()), race.get("train_images"))


def tta_choice(race: dict | None) -> list[str]:
    """The TTA level the race chose on validation with its winner's model (a line for
    ``final.describe``; none without ``--choose-tta``)."""
    tta = (race or {}).get("tta")
    if not tta:
        return []
    shown = ", ".join(f"{TTA_NAMES[k]} {a:.4f}" for k, a in tta["validation"].items())
    return [f"TTA chosen on validation with the race winner's model: {TTA_NAMES[tta['chosen']]} "
            f"({shown})"]  # fmt: skip


def rung_check(rows: list[dict], race_images: int | None = None) -> list[str]:
    """Whether the search's scores ordered the raced configs as the race at full length did
    (lines for ``final.describe``; none for a race without the search's scores, older than
    them). A study whose rungs put the race's winner last judged its configs mid-schedule, at
    too little data or too few epochs for this space: the hint says which of the study's
    settings to change (from the training images and schedule its trials had)."""
    known = [r for r in rows if r.get("search_score") is not None]
    if len(known) < 2 or len(known) < len(rows):
        return []
    by_search = sorted(known, key=lambda r: -r["search_score"])
    by_race = sorted(known, key=lambda r: -r["score"])
    order = ", ".join(
        f"{r['trial']} ({r['search_score']:.4f}, epoch {r.get('search_epochs', '?')})"
        for r in by_search
    )
    lines = [f"the search ranked them {order}; the race: "
             + ", ".join(f"{r['trial']} ({r['score']:.4f})" for r in by_race)]  # fmt: skip
    if by_race[0] is by_search[-1]:
        lines.append(
            "the race's winner ranked last in the search: its rungs misrank this space's "
            "configs; " + "; ".join(_fixes(known, race_images))
        )
    return lines


def _fixes(rows: list[dict], race_images: int | None) -> list[str]:
    """What to change in the study, from what its trials trained on (rows older than that
    record get the general advice)."""
    if "search_train_size" not in rows[0]:  # a race from before the record
        return ["score them on wsd's cooldown branches (--set schedule=wsd), at more images "
                "per trial (--train-size) or a later first rung (--first-rung)"]  # fmt: skip
    sizes = {r.get("search_train_size") for r in rows}
    schedules = {r.get("search_schedule") for r in rows} - {None}
    out = []
    small = [s for s in sizes if s is not None and (race_images is None or s < race_images)]
    if small:
        out.append(
            f"rank them on the race's split: all its training images (omit --train-size; the "
            f"search had {min(small):,}), --epochs at the race's length and --first-rung 3 "
            f"(benchmarks/rung_fidelity.py: {RACE_SPLIT_FIGURE})"
        )
    if schedules - {"wsd"}:
        out.append("score the rungs on wsd's cooldown branches (--set schedule=wsd)")
    return out or ["start the rungs later (--first-rung)"]


# what the measurement behind the first fix found (results/benchmarks/rung_fidelity.json)
RACE_SPLIT_FIGURE = (
    "on the seed space, configs trained on the race's split kept their final order from epoch "
    "3 on, 5 or 6 of 6 pairs, where 10,000-image rungs ordered 0 of 6; on the fast space, whose "
    "raced configs ended 1.2 points apart, no rung before the end ordered more than 4 of 6"
)
