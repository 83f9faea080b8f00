"""Close the loop: race a study's top trials on validation (:mod:`search.race`), retrain the
winner on all 50,000 training images, then test it once.

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
from search.data import CLASSES, Source
from search.errors import UserError
from search.evaluate import TTA_REPORTS, next_evaluation
from search.race import race, with_tta
from search.race_report import against_base, search_outcome, tta_choice
from search.record import Attr, End, best_complete, end_of, lost_trials
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
    choose_tta: bool = False,
    verbose: bool = True,
) -> Path:
    """Train the chosen trial's exact config on all training images, once per seed.

    Epochs default to the study's epoch budget times ``epoch_factor``; the learning-rate
    schedule is defined in fractions of the run, so it stretches to the new length. With
    ``race_k``, the trial is the winner of :func:`race` among the top ``race_k``. With
    ``schedule``, the race and the retrain use that learning-rate schedule kind in place of
    the searched config's (the rest of the config as searched). With ``choose_tta`` (and
    ``race_k``), the retrain is tested at the TTA level the race chose on validation. Run again
    after an interruption: finished seeds are kept, an unfinished one resumes from its last
    epoch.
    """
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}.")
    if race_k is not None and trial is not None:
        raise UserError("--race picks the trial; it does not go with --trial.")
    if choose_tta and race_k is None:
        raise UserError("--choose-tta chooses on the race's validation images: add --race K.")
    study, settings = load(name, storage)
    n_epochs = epochs or max(1, round(settings.epochs * epoch_factor))
    raced = None
    if race_k is not None:
        raced = race(
            name, study, settings, source, out=final_dir(name) / "race", k=race_k,
            epochs=n_epochs, schedule=schedule, choose_tta=choose_tta, verbose=verbose,
        )  # fmt: skip
        t = study.get_trials(deepcopy=False)[raced["winner"]]  # the base config may win
    else:
        t = pick_trial(study, trial)
    searched = Config.from_dict(t.user_attrs[Attr.CONFIG], where=f"trial {t.number}'s config")
    config = searched.replace(val_size=0, train_size=None, epochs=n_epochs)
    if schedule is not None:
        config = config.replace(schedule=schedule)
    if raced and raced.get("tta"):
        config = with_tta(config, raced["tta"]["chosen"])
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
        "latency_tta_p50_ms": first.get("latency_tta_p50_ms"),
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
        + (f"; with its TTA p50 {tta:.2f} ms" if (tta := result.get("latency_tta_p50_ms")) else "")
    )
    lines += against_base(result.get("race")) + tta_choice(result.get("race"))
    if any(not math.isfinite(a) for a in result["accuracy_per_seed"]):
        lines.append("warning: a seed's accuracy is not finite")
    return "\n".join(lines)
