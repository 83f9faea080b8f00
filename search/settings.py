"""A study's settings, stored with it, and the sampler and pruner they make.

A study keeps its settings (the space file's text, epochs, split sizes, pruner, sampler, seed,
limits and the target) in the storage itself, so ``start`` again, ``worker`` on another
machine, ``status`` and ``plots`` all agree without repeating options. :meth:`Settings.from_options`
is the one place options become settings, with their checks: the command line, the benchmarks
and the tests all use it.

To add a sampler or a pruner: a branch in :func:`make_sampler` / :func:`make_pruner`, its name
in :data:`SAMPLERS` / :data:`PRUNERS` (the command line offers these), a README line.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import optuna

from search import budget
from search.config import Config
from search.errors import UserError
from search.prior import NearBase
from search.record import BASE_CONFIG, Attr, count_live, epochs_trained
from search.space import Space, load_space, parse_space
from search.storage import open_storage, record_url, redact, storage_url

SAMPLERS = ("tpe", "random", "cmaes")
PRIORS = ("uniform", "base")  # where the start-up draws come from (search.prior)
PRUNERS = ("hyperband", "asha", "promote", "median", "none")
ENGINES = ("optuna", "kerastuner")
TUNERS = ("hyperband", "bayesian", "random")  # the KerasTuner engine's
RESUMABLE = ("trials", "deadline", "epoch_budget")  # settings a resumed study may change

QUICK = dict(space="seed", trials=6, epochs=3, train_size=3000, val_size=1000)
QUICK_STUDY = "quick"
DEFAULTS: dict[str, Any] = dict(
    space="default",
    trials=30,
    epochs=8,
    train_size=None,
    val_size=5000,
    pruner=None,  # promote on the Optuna engine where configs can pause, else hyperband
    sampler="tpe",
    seed=0,
    engine="optuna",
    tuner="hyperband",
    epoch_budget=None,
    startup_trials=10,
    prior=None,  # TPE on the Optuna engine: "base" (benchmarks/fidelity.py --prior); else uniform
    first_rung=1,  # promote: the replay (benchmarks/replay.py) chose r = 1, eta = 3
    eta=3,
    bootstrap=0,  # promote: ASHA's own rule (the replay: at r = 1 a bootstrap only delays)
    fixed=None,  # config keys fixed for every trial (start --set KEY=VALUE), as a [fixed] table
)
# config keys the study's own options set: --set cannot fix them
STUDY_KEYS = {"epochs": "--epochs", "train_size": "--train-size", "val_size": "--val-size"}
# training state a pause cannot keep: refused with --pruner promote
NOT_PAUSABLE = ("ema", "plateau", "early_stop")


def resolve_space_path(value: str) -> Path:
    """A space file: a path, or a bare name looked up in ./spaces/ then the project's spaces/."""
    p = Path(value)
    if p.exists() or p.suffix:
        return p
    for root in (Path("spaces"), Path(__file__).resolve().parents[1] / "spaces"):
        if (root / f"{value}.toml").exists():
            return root / f"{value}.toml"
    return p


@dataclass(frozen=True)
class Settings:
    space_path: str
    space_text: str
    trials: int
    epochs: int
    train_size: int | None
    val_size: int
    pruner: str = "hyperband"
    sampler: str = "tpe"
    seed: int = 0
    max_params: int = budget.MAX_PARAMS
    max_latency_ms: float = budget.MAX_LATENCY_MS
    deadline: float | None = None  # epoch seconds after which no trial starts
    epoch_budget: int | None = None  # no trial starts once this many epochs were trained
    engine: str = "optuna"  # optuna | kerastuner
    tuner: str = "hyperband"  # the KerasTuner engine's tuner: hyperband | bayesian | random
    startup_trials: int = 10  # TPE's random start-up trials (Optuna's default; older studies)
    prior: str = "uniform"  # "base": start-up draws near the space's base config (search.prior)
    first_rung: int = 1  # promote: the first rung, in epochs
    eta: int = 3  # promote: the reduction factor (the top 1/eta of a rung go on)
    bootstrap: int = 0  # promote: configs at the first rung before its first promotion (older
    # studies: 0, ASHA's own rule)
    trim_rungs: bool = False  # promote: drop a rung just below the top (older studies: kept)
    fixed: dict[str, Any] = field(default_factory=dict)  # start --set: on top of the space's
    # [fixed] table, for every trial (older studies: none)

    @classmethod
    def from_options(
        cls,
        *,
        quick: bool = False,
        timeout: float | None = None,
        started_at: float | None = None,
        **options: Any,
    ) -> Settings:
        """Settings from command-line style options (None: the default; ``quick``: the small
        demo study's), checked: every mistake is a :class:`UserError` naming the option.
        ``timeout`` counts from ``started_at`` (default: now)."""
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown options {sorted(unknown)}")
        values = {**DEFAULTS, **(QUICK if quick else {})}
        values.update({k: v for k, v in options.items() if v is not None})
        if values["prior"] is None:  # near the base where TPE starts; random search stays uniform
            tpe = values["sampler"] == "tpe" and values["engine"] == "optuna"
            values["prior"] = "base" if tpe else "uniform"
        if values["trials"] < 1:
            raise UserError(f"--trials must be at least 1, got {values['trials']}.")
        if values["startup_trials"] < 0:
            raise UserError(f"--startup-trials must be 0 or more, got {values['startup_trials']}.")
        for key, allowed in (
            ("sampler", SAMPLERS),
            ("prior", PRIORS),
            ("pruner", (*PRUNERS, None)),
            ("engine", ENGINES),
            ("tuner", TUNERS),
        ):
            if values[key] not in allowed:
                raise UserError(f"{key} {values[key]!r} is unknown; choose {', '.join(allowed)}.")
        own_draws = values["sampler"] == "cmaes" or values["engine"] != "optuna"
        if values["prior"] == "base" and own_draws:
            raise UserError(
                "--prior base shapes the random start-up draws of --sampler tpe or random (Optuna "
                "engine); CMA-ES and KerasTuner draw their own."
            )
        if options.get("tuner") is not None and values["engine"] != "kerastuner":
            raise UserError(
                "--tuner goes with --engine kerastuner (Optuna uses --sampler/--pruner)."
            )
        fixed = dict(values["fixed"] or {})
        for key, option in STUDY_KEYS.items():
            if key in fixed:
                raise UserError(f"--set {key}: a study sets it with {option}.")
        space = load_space(resolve_space_path(str(values["space"]))).fixing(fixed)
        base = space.base.replace(  # the split and epochs must make a valid config
            epochs=values["epochs"], train_size=values["train_size"], val_size=values["val_size"]
        )
        if values["val_size"] < 1:
            raise UserError("a search needs validation images: --val-size must be at least 1.")
        if values["pruner"] is None:  # the efficiency benchmark's pick (README, "Measured here")
            pausable = values["engine"] == "optuna" and not not_pausable(space, base)
            values["pruner"] = "promote" if pausable else "hyperband"
        if values["pruner"] == "promote":
            _check_promote(values, space, base)
        return cls(
            space_path=str(space.path),
            space_text=space.text,
            trials=values["trials"],
            epochs=base.epochs,
            train_size=base.train_size,
            val_size=base.val_size,
            pruner=values["pruner"],
            sampler=values["sampler"],
            seed=values["seed"],
            deadline=None if timeout is None else (started_at or time.time()) + timeout,
            engine=values["engine"],
            tuner=values["tuner"],
            epoch_budget=values["epoch_budget"],
            startup_trials=values["startup_trials"],
            prior=values["prior"],
            first_rung=values["first_rung"],
            eta=values["eta"],
            bootstrap=values["bootstrap"],
            trim_rungs=True,  # a new study: no rung just below the top (asha.rungs)
            fixed=fixed,
        )

    def space(self) -> Space:
        return parse_space(self.space_text, Path(self.space_path)).fixing(self.fixed)

    def base(self) -> Config:
        """The space's base with the study's epochs and split: every trial starts here."""
        return self.space().base.replace(
            epochs=self.epochs, train_size=self.train_size, val_size=self.val_size
        )

    def limits(self) -> budget.Limits:
        return budget.Limits(self.max_params, self.max_latency_ms)

    @classmethod
    def of(cls, study: optuna.Study) -> Settings:
        raw = study.user_attrs.get("settings")
        if raw is None:
            raise UserError(
                f"study {study.study_name!r} was not made by cifar10-search (no settings stored)."
            )
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(raw).items() if k in known})

    def store(self, study: optuna.Study) -> None:
        study.set_user_attr("settings", json.dumps(asdict(self)))


def _check_promote(values: dict[str, Any], space: Space, base: Config) -> None:
    if values["eta"] < 2:
        raise UserError(
            f"--eta must be at least 2 (the top 1/eta of a rung go on), got {values['eta']}."
        )
    if values["bootstrap"] < 0:
        raise UserError(f"--bootstrap must be 0 or more, got {values['bootstrap']}.")
    if not 1 <= values["first_rung"] <= base.epochs:
        raise UserError(
            f"--first-rung must be between 1 and the study's --epochs ({base.epochs}), got "
            f"{values['first_rung']}."
        )
    if values["engine"] != "optuna":
        raise UserError("--pruner promote schedules Optuna trials; KerasTuner has its own.")
    stateful = not_pausable(space, base)
    if stateful:
        raise UserError(
            f"--pruner promote pauses and resumes training, which {', '.join(stateful)} "
            f"cannot survive (their state lives in Keras callbacks): remove them from "
            f"{space.path} or choose another pruner."
        )


def not_pausable(space: Space, base: Config) -> list[str]:
    """The config keys of a space whose training state a pause cannot keep."""
    stateful = [k for k in NOT_PAUSABLE if getattr(base, k)]
    return stateful + [p.config_key for p in space.params if p.config_key in NOT_PAUSABLE]


def given_options(
    options: dict[str, Any], *, quick: bool = False, timeout: float | None = None
) -> set[str]:
    """The settings a user asked for by name: on resume, these must agree with the stored
    ones (except :data:`RESUMABLE`, which they change)."""
    given = {k for k, v in options.items() if v is not None}
    if quick:
        given |= {"space", "epochs", "train_size", "val_size"}
    if timeout is not None:
        given.add("deadline")
    if "space" in given:
        given = (given - {"space"}) | {"space_text"}
    return given


def sampler_seed(s: Settings, worker: int = 0, restarts: int = 0, held: int = 0) -> int:
    """Workers of one study must not draw the same points, nor may a worker that restarted
    (memory recycling) replay the draws of its first life, nor a study resumed with ``held``
    trials replay those of its first start: each gets its own seed."""
    return s.seed + worker + 10_007 * restarts + 1_000_003 * held


def make_sampler(
    s: Settings, worker: int = 0, restarts: int = 0, held: int = 0
) -> optuna.samplers.BaseSampler:
    seed = sampler_seed(s, worker, restarts, held)
    if s.sampler == "tpe":
        sampler = optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, n_startup_trials=s.startup_trials
        )
    elif s.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    elif s.sampler == "cmaes":
        sampler = optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    else:
        raise UserError(f"sampler {s.sampler!r} is unknown; choose {', '.join(SAMPLERS)}.")
    if s.prior == "base":  # random: every draw near the base; tpe: its start-up draws
        startup = s.trials * 10 if s.sampler == "random" else s.startup_trials
        sampler = NearBase(sampler, s.space().base_point(), startup, seed=seed)
    return sampler  # promote wraps it (search.schedulers.promote.LatestSegments)


def make_pruner(s: Settings) -> optuna.pruners.BasePruner:
    if s.engine == "kerastuner":  # KerasTuner's own tuner decides; the mirror never prunes
        return optuna.pruners.NopPruner()
    if s.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(s.epochs, 1), reduction_factor=3
        )
    if s.pruner == "asha":
        # Successive halving with KerasTuner's first rung (2 epochs) and no lone promotions: a
        # trial is stopped at a rung until 2 others have reached it, so the first trials of a
        # study are screened instead of all being trained in full. A study of under 10 trials
        # cannot spare its first two (it could end with no complete trial): there a trial
        # alone at a rung goes on, as in Hyperband.
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=2, reduction_factor=3, bootstrap_count=2 if s.trials >= 10 else 0
        )
    if s.pruner == "promote":  # its scheduler pauses and resumes (search.schedulers.promote)
        return optuna.pruners.NopPruner()
    if s.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if s.pruner == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"pruner {s.pruner!r} is unknown; choose {', '.join(PRUNERS)}.")


def load(
    name: str, url: str | None = None, worker: int = 0, restarts: int = 0
) -> tuple[optuna.Study, Settings]:
    """Open an existing study with its stored sampler and pruner settings (the sampler seeded
    for this worker, process and the trials the study holds: :func:`sampler_seed`); nothing is
    created when there is none."""
    url = storage_url(name, url)
    missing = UserError(
        f"no study {name!r} in {redact(url)}; start one with "
        f"'cifar10-search start --study {name} ...'."
    )
    try:
        storage = open_storage(url, create=False)
        probe = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise missing from None
    s = Settings.of(probe)
    held = len(probe.get_trials(deepcopy=False))  # a resumed study draws anew (sampler_seed)
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(s, worker, restarts, held),
        pruner=make_pruner(s),
    )
    return study, s


def create_or_resume(
    name: str,
    url: str | None,
    settings: Settings,
    *,
    given: set[str],
    enqueue_seed: bool = True,
) -> tuple[optuna.Study, Settings]:
    """Create the study, or resume it: stored settings win, except the trial target and the
    timeout; an option given now that contradicts the stored ones is an error."""
    url = storage_url(name, url)
    storage = open_storage(url)
    names = {
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    }
    if name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        old = Settings.of(study)
        clash = [
            "the space file (its text differs from the stored one)"
            if k == "space_text"
            else f"{k} (stored {getattr(old, k)!r}, given {getattr(settings, k)!r})"
            for k in sorted(given)
            if k not in RESUMABLE and getattr(old, k) != getattr(settings, k)
        ]
        if clash:
            raise UserError(
                f"study {name!r} exists with other settings: {', '.join(clash)}. A study keeps "
                f"its settings so its trials compare; start a new study name instead."
            )
        keep = {k: getattr(settings, k) for k in RESUMABLE if k in given}
        settings = Settings(**{**asdict(old), **keep})
    else:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        study.set_user_attr("created", time.time())
        if enqueue_seed:
            point = settings.space().base_point()
            study.enqueue_trial(point, user_attrs={Attr.ENQUEUED: BASE_CONFIG})
    settings.store(study)
    record_url(name, url)
    return study, settings


def out_of_budget(study: optuna.Study, s: Settings) -> bool:
    """Past the deadline, or the epoch budget spent: nothing more starts, promotions neither."""
    if s.deadline is not None and time.time() >= s.deadline:
        return True
    spent = s.epoch_budget is not None
    return spent and epochs_trained(study.get_trials(deepcopy=False)) >= s.epoch_budget


def held_back(study: optuna.Study, s: Settings) -> str:
    """Why a study short of its trial target starts nothing ("" when it would, or is not
    short): a resumed study keeps its stored deadline and epoch budget."""
    if s.trials <= count_live(study) or not out_of_budget(study, s):
        return ""
    if s.deadline is not None and time.time() >= s.deadline:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.deadline))
        return f" (its --timeout ran out at {when}: give a new --timeout S to run the rest)"
    return (f" (its --epoch-budget of {s.epoch_budget:g} epochs is spent: give a larger one to "
            "run the rest)")  # fmt: skip


def remaining(study: optuna.Study, s: Settings) -> int:
    """New configs still to start: none past the deadline or the epoch budget."""
    return 0 if out_of_budget(study, s) else s.trials - count_live(study)
