"""The race: a study's top configs and its base config trained at the retrain's length on
the train split and scored on the validation images, before the test set is touched (which it
never is here: the search's guard). The winner goes on to the retrain (:mod:`search.final`).
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.config import Config
from search.data import Source, search_guard, split_for
from search.errors import UserError
from search.evaluate import TTA_NAMES, tta_level, tta_scores
from search.inference import load_keras
from search.race_report import search_outcome, search_score, tta_choice
from search.record import BASE_CONFIG, Attr, End
from search.runs import train_run, write_json


def _config_key(t: optuna.trial.FrozenTrial) -> str:
    """A trial's whole config as one string: trials with the same key train the same model."""
    return json.dumps(t.user_attrs[Attr.CONFIG], sort_keys=True)


def candidates(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The top ``k`` complete trials by the search's value, one per config (the earlier of a
    tie); refused when the study has fewer."""
    if k < 1:
        raise UserError(f"--race must be at least 1, got {k}.")
    done = sorted(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
        key=lambda t: (-t.value, t.number),
    )
    seen, out = set(), []
    for t in done:
        key = _config_key(t)
        if key not in seen:
            seen.add(key)
            out.append(t)
    if len(out) < k:
        raise UserError(
            f"--race {k} needs {k} complete trials with distinct configs; study "
            f"{study.study_name!r} has {len(out)}. Race fewer, or run the study further."
        )
    return out[:k]


def base_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The space's base config as the study first trained it (trial 0 of a study that
    queued it: the hand-tuned preset the space is centred on), if it trained within the
    budget; None for a study without one."""
    for t in study.get_trials(deepcopy=False):
        trained = t.user_attrs.get(Attr.END) in (End.COMPLETE, End.PRUNED, End.PAUSED)
        if t.user_attrs.get(Attr.ENQUEUED) == BASE_CONFIG and trained:
            return t
    return None


def entrants(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The race's entrants: the space's base config if it is not among them, whatever the
    search made of it, then the top ``k`` complete trials. The search judged configs at a
    fraction of the retrain's data and epochs, where a one-cycle schedule still at its high
    learning rate looks worse than it ends; the race at full length keeps a search from
    handing on a config that validation ranks below the one it started from. The base runs
    first: it is the yardstick, so a race stopped part-way (a session's end, a budget) already
    says whether the searched configs beat it, one by one."""
    out = candidates(study, k)
    base = base_trial(study)
    if base is None:
        return out
    # the search may have promoted the base config to the end: its last segment stands for it
    key = _config_key(base)
    return ([t for t in out if _config_key(t) == key] or [base]) + [
        t for t in out if _config_key(t) != key
    ]


def is_base(t: optuna.trial.FrozenTrial, base: optuna.trial.FrozenTrial | None) -> bool:
    """Whether ``t`` trains the space's base config: the trial the study queued it as, or a
    later segment of it (which carries the config, not the queue's mark)."""
    return base is not None and _config_key(t) == _config_key(base)


def race(
    name: str, study: optuna.Study, settings, source: Source, *, out: Path, k: int,
    epochs: int, schedule: str | None = None, choose_tta: bool = False, verbose: bool = True,
) -> dict:  # fmt: skip
    """Train each of the race's :func:`entrants` at the retrain's epochs on the train split
    and score it on the validation images (with the TTA its config asks for): the winner goes
    on to the retrain. With ``choose_tta``, the winner's TTA level is then chosen on the
    validation images too (:func:`choose_tta_level`). Before the test set is touched, and it
    never is here (the search's guard). Resumable: finished candidates are kept in
    ``out/trial-N/`` (``final/race/``)."""
    rows = []
    base = base_trial(study)
    with search_guard():
        for t in entrants(study, k):
            config = Config.from_dict(t.user_attrs[Attr.CONFIG], where=f"trial {t.number}")
            config = config.replace(epochs=epochs, train_size=None, val_size=settings.val_size)
            if schedule is not None:
                config = config.replace(schedule=schedule)
            run = out / f"trial-{t.number}"
            scored = run / "race.json"
            ran = run / "config.json"
            if ran.exists() and Config.from_json(ran) != config:  # another --schedule/--epochs
                raise UserError(
                    f"{run} holds a race run of another config (epochs {config.epochs}, "
                    f"schedule {config.schedule} asked here); move {out} away to race again. "
                    "Nothing was changed."
                )
            if not scored.exists():
                reuse, its_base = ran_in_study(t, config), is_base(t, base)
                if verbose:
                    what = "the space's base config, " if its_base else ""
                    how = ": the study ran this race run, scored from it" if reuse else ""
                    print(f"race: trial {t.number} ({what}{search_outcome(t)}), {run}{how}")
                if reuse:
                    scores = _scores_from_study(t, config, source, run)
                else:
                    if not (run / "train.json").exists():
                        train_run(config, source, run, verbose=verbose, extra={"race_of": name})
                    scores = _validation_scores(run, config, source)
                value = t.value if t.state == TrialState.COMPLETE else None
                write_json(
                    scored, {"trial": t.number, "base": its_base, "search_value": value,
                             **scores}
                )  # fmt: skip
            rows.append({**search_score(t), **json.loads(scored.read_text())})
    winner = max(rows, key=lambda r: (r["score"], -r["trial"]))
    trained = json.loads((out / f"trial-{winner['trial']}" / "train.json").read_text())
    record = {
        "epochs": epochs,
        "train_images": trained["train_images"],
        "val_images": trained["val_images"],
        "candidates": rows,
        "winner": winner["trial"],
    }
    if verbose:
        for r in rows:
            print(f"race: trial {r['trial']}: validation {r['score']:.4f} ({r['scored_as']})")
        print(f"race: trial {winner['trial']} wins", flush=True)
    if choose_tta:
        with search_guard():
            record["tta"] = choose_tta_level(
                out / f"trial-{winner['trial']}", source, winner["validation"], verbose
            )
    write_json(out / "race.json", record)
    return record


def choose_tta_level(run: Path, source: Source, known: dict, verbose: bool = True) -> dict:
    """The TTA level (plain, flip, flip+shift) that scores best on the validation images
    with the race winner's model; a tie goes to the fewer forward passes. TTA changes no
    training, only inference (2 or 6 passes per image), so the choice needs one model, not a
    search: ``known``, the winner's validation accuracies, if they hold every level (a study
    records them), else its model's. A winner the race scored from an older study has no
    model: its run is trained here once (the study's run again, counted in the race's
    compute)."""
    if len(known) == 3:
        return _chosen(known, verbose)
    config = Config.from_json(run / "config.json")
    done = run / "train.json"
    if done.exists() and json.loads(done.read_text()).get("from_study_trial") is not None:
        done.unlink()  # the zero-epoch record of a run the study trained: train it for a model
    if not done.exists():
        if verbose:
            print(f"race: training {run} for its model, to choose the TTA level", flush=True)
        train_run(config, source, run, verbose=verbose)
    return _chosen(_accuracies(run, config, source, level=2), verbose)


def _chosen(accuracy: dict, verbose: bool) -> dict:
    levels = list(TTA_NAMES)  # a tie goes to the earlier: fewer passes
    chosen = max(accuracy, key=lambda level: (accuracy[level], -levels.index(level)))
    if verbose:
        print("race: " + tta_choice({"tta": {"validation": accuracy, "chosen": chosen}})[0])
    return {"validation": accuracy, "chosen": chosen}


def with_tta(config: Config, level: str) -> Config:
    """``config`` evaluated at the TTA level named as :func:`search.evaluate.tta_logits` keys
    them."""
    return config.replace(tta_flip=level != "plain", tta_shift=level == "flip_shift")


def ran_in_study(t: optuna.trial.FrozenTrial, config: Config) -> bool:
    """Whether a complete trial already ran this race run: the same config (split, length,
    schedule, seed) to its end, and its score at the config's TTA level known (plain, or
    every level a study records, :data:`Attr.VAL_TTA`). A study whose rungs train on the
    race's split (the default ``--train-size``) leaves such trials, and racing them again
    would cost their whole length for the same figure."""
    return (
        t.state == TrialState.COMPLETE
        and (tta_level(config, None) == 0 or Attr.VAL_TTA in t.user_attrs)
        and Config.from_dict(t.user_attrs[Attr.CONFIG]) == config
    )


def _scores_from_study(t, config: Config, source: Source, run: Path) -> dict:
    """A race run's record from the trial that ran it in the study (no training): its config,
    and a ``train.json`` of zero epochs, so the race's compute counts it once, in the search
    (a run trained here already, for a TTA choice, keeps its own: it was trained twice)."""
    split = split_for(config, source)
    run.mkdir(parents=True, exist_ok=True)
    write_json(run / "config.json", config.to_dict())
    if not (run / "train.json").exists():
        write_json(run / "train.json", {
            "status": "complete", "epochs": 0, "train_seconds": 0.0,
            "from_study_trial": t.number, "train_images": len(split.x_train),
            "val_images": len(split.x_val),
        })  # fmt: skip
    levels = t.user_attrs.get(Attr.VAL_TTA) or {"plain": t.value}
    top = list(TTA_NAMES)[tta_level(config, None)]
    return {"validation": levels, "score": levels[top], "scored_as": top,
            "from_study_trial": t.number}  # fmt: skip


def _validation_scores(run: Path, config: Config, source: Source) -> dict:
    """The run's validation accuracy at each TTA level up to its config's; its score is the
    highest level's (what its config would be tested with)."""
    accuracy = _accuracies(run, config, source, level=tta_level(config, None))
    top = list(accuracy)[-1]
    return {"validation": accuracy, "score": accuracy[top], "scored_as": top}


def _accuracies(run: Path, config: Config, source: Source, *, level: int) -> dict[str, float]:
    """The run's model's validation accuracy at each TTA level up to ``level``."""
    model = load_keras(run / "model.keras")
    split = split_for(config, source)
    scores = tta_scores(model, split.x_val, split.y_val, level=level)
    return {name: s["accuracy"] for name, s in scores.items()}
