"""Close the loop: race a study's top trials on validation, retrain the winner on all 50,000
training images, then test it once.

``results/NAME/final/`` holds ``race/`` (with ``--race K``: one run folder per candidate and
``race.json``), ``best_config.json``, one run folder per seed (``seed-S/``, each resumable
after an interruption) and, after the test, ``test_metrics.json`` with the mean and spread over
seeds, the race, and the provenance of every figure.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from search.config import Config
from search.confusion import write_confusion
from search.data import CLASSES, Source, search_guard, split_for
from search.errors import UserError
from search.evaluate import TTA_REPORTS, next_evaluation, tta_level, tta_scores
from search.inference import load_keras
from search.race_report import against_base, search_outcome, search_score
from search.record import BASE_CONFIG, Attr, End, best_complete, end_of, lost_trials
from search.runs import evaluate_run, metrics_file, train_run, write_json
from search.settings import load
from search.storage import study_dir

DEFAULT_EPOCH_FACTOR = 3.0


def final_dir(name: str) -> Path:
    return study_dir(name) / "final"


def pick_trial(study: optuna.Study, number: int | None = None) -> optuna.trial.FrozenTrial:
    """The best complete trial, or trial ``number`` if it completed; anything else is refused
    with the reason it cannot stand for a config."""
    if number is None:
        return best_complete(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise UserError(
            f"study {study.study_name!r} has no trial {number} (trials 0 to {len(trials) - 1})."
        )
    t = trials[number]
    if t.state == TrialState.COMPLETE:
        return t
    end, detail = end_of(t, lost_trials(study))
    detail = detail.splitlines()[:1]
    why = {
        End.OVER_BUDGET: "it is over budget",
        End.PRUNED: "it was pruned",
        End.DIVERGED: "its training diverged",
    }.get(end, f"it ended as {end}")
    raise UserError(
        f"trial {number} of study {study.study_name!r} cannot be retrained: {why}"
        + (f" ({detail[0]})" if detail else "")
        + ". Only complete trials stand for a config; omit --trial for the best one."
    )


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
    name: str, study: optuna.Study, settings, source: Source, *, k: int, epochs: int,
    schedule: str | None = None, verbose: bool = True,
) -> dict:  # fmt: skip
    """Train each of the race's :func:`entrants` at the retrain's epochs on the train split
    and score it on the validation images (with the TTA its config asks for): the winner goes
    on to the retrain. Before the test set is touched, and it never is here (the search's
    guard). Resumable: finished candidates are kept in ``final/race/trial-N/``."""
    out = final_dir(name) / "race"
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
                if verbose:
                    what = "the space's base config, " if is_base(t, base) else ""
                    print(f"race: trial {t.number} ({what}{search_outcome(t)}), {run}", flush=True)
                if not (run / "train.json").exists():
                    train_run(config, source, run, verbose=verbose, extra={"race_of": name})
                complete = t.state == TrialState.COMPLETE
                write_json(scored, {"trial": t.number, "base": is_base(t, base),
                                    "search_value": t.value if complete else None,
                                    **_validation_scores(run, config, source)})  # fmt: skip
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
    write_json(out / "race.json", record)
    if verbose:
        for r in rows:
            print(f"race: trial {r['trial']}: validation {r['score']:.4f} ({r['scored_as']})")
        print(f"race: trial {winner['trial']} wins", flush=True)
    return record


def _validation_scores(run: Path, config: Config, source: Source) -> dict:
    """The run's validation accuracy at each TTA level up to its config's; its score is the
    highest level's (what its config would be tested with)."""
    model = load_keras(run / "model.keras")
    split = split_for(config, source)
    scores = tta_scores(model, split.x_val, split.y_val, level=tta_level(config, None))
    accuracy = {level: s["accuracy"] for level, s in scores.items()}
    top = list(accuracy)[-1]
    return {"validation": accuracy, "score": accuracy[top], "scored_as": top}


def retrain(
    name: str,
    storage: str | None,
    source: Source,
    *,
    trial: int | None = None,
    epochs: int | None = None,
    epoch_factor: float = DEFAULT_EPOCH_FACTOR,
    seeds: int = 1,
    race_k: int | None = None,
    schedule: str | None = None,
    verbose: bool = True,
) -> Path:
    """Train the chosen trial's exact config on all training images, once per seed.

    Epochs default to the study's epoch budget times ``epoch_factor``; the learning-rate
    schedule is defined in fractions of the run, so it stretches to the new length. With
    ``race_k``, the trial is the winner of :func:`race` among the top ``race_k``. With
    ``schedule``, the race and the retrain use that learning-rate schedule kind in place of
    the searched config's (the rest of the config as searched). Run again
    after an interruption: finished seeds are kept, an unfinished one resumes from its last
    epoch.
    """
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}.")
    if race_k is not None and trial is not None:
        raise UserError("--race picks the trial; it does not go with --trial.")
    study, settings = load(name, storage)
    n_epochs = epochs or max(1, round(settings.epochs * epoch_factor))
    raced = None
    if race_k is not None:
        raced = race(
            name, study, settings, source, k=race_k, epochs=n_epochs, schedule=schedule,
            verbose=verbose,
        )  # fmt: skip
        t = study.get_trials(deepcopy=False)[raced["winner"]]  # the base config may win
    else:
        t = pick_trial(study, trial)
    searched = Config.from_dict(t.user_attrs[Attr.CONFIG], where=f"trial {t.number}'s config")
    config = searched.replace(val_size=0, train_size=None, epochs=n_epochs)
    if schedule is not None:
        config = config.replace(schedule=schedule)
    out = final_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    previous = out / "retrain.json"
    plan = {
        "study": name,
        "trial": t.number,
        "trial_value": t.value,
        "search_epochs": settings.epochs,
        "epochs": n_epochs,
        "seeds": [config.seed + i for i in range(seeds)],
        "config": config.to_dict(),
        "race": raced,
    }
    if previous.exists():
        old = json.loads(previous.read_text())
        if (old["trial"], old["config"]) != (plan["trial"], plan["config"]):
            raise UserError(
                f"{out} holds a retrain of trial {old['trial']} with {old['epochs']} epochs; "
                f"this one is trial {t.number} with {n_epochs}. Move that folder away first: "
                f"nothing in it is replaced."
            )
        plan["seeds"] = sorted(set(old["seeds"]) | set(plan["seeds"]))
    write_json(previous, plan)
    write_json(out / "best_config.json", config.to_dict())
    if verbose:
        print(
            f"retraining trial {t.number} ({search_outcome(t)}) of study {name} "
            f"on all 50,000 training images: {n_epochs} epochs, seeds {plan['seeds']}",
            flush=True,
        )
    for seed in plan["seeds"]:
        run = out / f"seed-{seed}"
        done = run / "train.json"
        if done.exists() and (run / "model.keras").exists():
            if verbose:
                print(f"seed {seed}: already trained ({run})", flush=True)
            continue
        if verbose:
            print(f"seed {seed}: {run}", flush=True)
        train_run(
            config.replace(seed=seed),
            source,
            run,
            verbose=verbose,
            extra={"study": name, "trial": t.number},
        )
    return out


def seed_runs(name: str) -> list[Path]:
    runs = sorted(
        (p.parent for p in final_dir(name).glob("seed-*/model.keras")),
        key=lambda p: int(p.name.split("-")[1]),
    )
    if not runs:
        raise UserError(
            f"study {name!r} has no retrained model in {final_dir(name)}; run "
            f"'python cifar10_train.py --study {name}' first."
        )
    return runs


def _mean_std(values: list[float]) -> dict[str, float]:
    a = np.array(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


def evaluate_final(
    name: str, source: Source, *, tta: bool | None = None, fmt: str = "keras"
) -> dict:
    """Evaluate every retrained seed once on the test images and write the summary
    (``test_metrics.json``, or ``test_metrics_<fmt>.json`` for an exported format)."""
    runs = seed_runs(name)
    per_seed = [evaluate_run(run, source, tta=tta, fmt=fmt) for run in runs]
    plan = json.loads((final_dir(name) / "retrain.json").read_text())
    first = per_seed[0]
    out = final_dir(name)
    previous = metrics_file(out, fmt)
    cm = np.sum([np.array(r["confusion_matrix"]) for r in per_seed], axis=0)
    flip = [r["accuracy_tta_flip"] for r in per_seed if r["accuracy_tta_flip"] is not None]
    shift = [r["accuracy_tta_flip_shift"] for r in per_seed if r["accuracy_tta_flip_shift"]]
    result = {
        "study": name,
        "format": fmt,
        "trial": plan["trial"],
        "trial_validation_accuracy": plan["trial_value"],
        "seeds": [json.loads((r / "config.json").read_text())["seed"] for r in runs],
        "epochs": plan["epochs"],
        "accuracy": _mean_std([r["accuracy"] for r in per_seed]),
        "accuracy_per_seed": [r["accuracy"] for r in per_seed],
        "accuracy_tta_flip": _mean_std(flip) if flip else None,
        "accuracy_tta_flip_shift": _mean_std(shift) if shift else None,
        "per_class_accuracy": {
            c: float(np.mean([r["per_class_accuracy"][c] for r in per_seed])) for c in CLASSES
        },
        "confusion_matrix_summed_over_seeds": cm.tolist(),
        "params": first["params"],
        "latency_p50_ms": first["latency_p50_ms"],
        "latency_p95_ms": first["latency_p95_ms"],
        "latency_threads": first["latency_threads"],
        "train_seconds": [
            json.loads((r / "train.json").read_text())["train_seconds"] for r in runs
        ],
        "config": plan["config"],
        "race": plan.get("race"),
        "data_source": first["data_source"],
        "data_checksum_sha256": first["data_checksum_sha256"],
        "test_evaluations": next_evaluation(previous),
        "versions": first["versions"],
        "machine": first["machine"],
        "git_commit": first["git_commit"],
        "evaluated_at": first["evaluated_at"],
    }
    if fmt == "keras":
        write_confusion(out, cm)
    write_json(previous, result)
    return result


def describe(result: dict) -> str:
    acc = result["accuracy"]
    lines = [
        f"study {result['study']}, trial {result['trial']}, seeds {result['seeds']} "
        f"(test evaluation number {result['test_evaluations']})",
        f"test accuracy {acc['mean']:.4f}"
        + (f" +- {acc['std']:.4f}" if len(result["seeds"]) > 1 else ""),
    ]
    for key, label in TTA_REPORTS:
        if result.get(key):
            t = result[key]
            lines.append(
                f"with {label} TTA  {t['mean']:.4f}"
                + (f" +- {t['std']:.4f}" if len(result["seeds"]) > 1 else "")
            )
    lines += [f"  {c:<11} {a:.4f}" for c, a in result["per_class_accuracy"].items()]
    lines.append(
        f"parameters {result['params']:,}  latency p50 {result['latency_p50_ms']:.2f} ms  "
        f"p95 {result['latency_p95_ms']:.2f} ms ({result['latency_threads']} threads)"
    )
    lines += against_base(result.get("race"))
    if any(not math.isfinite(a) for a in result["accuracy_per_seed"]):
        lines.append("warning: a seed's accuracy is not finite")
    return "\n".join(lines)
