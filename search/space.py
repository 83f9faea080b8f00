"""Search spaces as data: a TOML file declares each parameter once.

.. code-block:: toml

    description = "the historical CNN's family"
    base = "seed"                 # a preset name, or a config JSON path relative to this file
    [fixed]                       # config keys set for every trial (optional)
    bn_momentum = 0.9
    [params.learning_rate]
    type = "float"                # float | int | categorical | bool
    low = 1e-4
    high = 1e-2
    log = true
    [params.momentum]
    type = "float"
    low = 0.8
    high = 0.99
    when = { optimizer = ["sgd", "rmsprop"] }   # sampled only under this condition

Every parameter name is a config key. The loader checks the whole file before any training and
names the file, the parameter and the problem. Parameters are sampled in file order; a ``when``
may only name a parameter declared above it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna

from search.config import Config, field_kind, field_names, preset
from search.errors import ConfigError, SpaceError

TYPES = ("float", "int", "categorical", "bool")
PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "when", "key"}
TOP_KEYS = {"description", "base", "fixed", "params"}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    key: str = ""  # the config key it sets; "" : its name (two parameters may share a key
    # when their ``when`` conditions never hold together: a learning rate per optimizer)

    @property
    def config_key(self) -> str:
        return self.key or self.name

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.type == "float":
            return optuna.distributions.FloatDistribution(
                self.low, self.high, log=self.log, step=self.step
            )
        if self.type == "int":
            return optuna.distributions.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return optuna.distributions.CategoricalDistribution(self.choices)

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return trial.suggest_categorical(self.name, self.choices)

    def contains(self, value: Any) -> bool:
        if self.type in ("float", "int"):
            return (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and self.low <= value <= self.high
            )
        return any(type(value) is type(c) and value == c for c in self.choices)

    def active(self, params: dict[str, Any]) -> bool:
        """Whether the ``when`` condition holds for the values sampled so far."""
        return all(params.get(k, _MISSING) in v for k, v in self.when.items())


_MISSING = object()


@dataclass(frozen=True)
class Space:
    path: Path
    base: Config
    params: tuple[Param, ...]
    description: str = ""
    text: str = ""  # the file as read: stored with a study, so every worker uses the same space

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample the active parameters in file order with the trial's sampler."""
        out: dict[str, Any] = {}
        for p in self.params:
            if p.active(out):
                out[p.name] = p.suggest(trial)
        return out

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {p.name: p.distribution() for p in self.params}

    def apply(self, params: dict[str, Any], base: Config | None = None) -> Config:
        """The config of a sampled point: the base with the point's values replaced."""
        keys = {p.name: p.config_key for p in self.params}
        return (base or self.base).replace(**{keys.get(k, k): v for k, v in params.items()})

    def fixing(self, changes: dict[str, Any], where: str = "--set") -> Space:
        """This space with more config keys fixed for every trial, as its ``[fixed]`` table
        does (``cifar10-search start --set``). A key the space searches cannot be fixed."""
        searched = sorted({p.config_key for p in self.params} & set(changes))
        if searched:
            raise SpaceError(
                f"{where}: {', '.join(searched)} is searched by {self.path}; fix a key the space "
                "does not search, or edit the space."
            )
        return replace(self, base=_fixed(self.base, changes, where)) if changes else self

    def base_point(self, base: Config | None = None) -> dict[str, Any]:
        """The base config's own values of the active parameters: the point to enqueue first.
        A value outside the declared range is left for the sampler."""
        base = base or self.base
        out: dict[str, Any] = {}
        for p in self.params:
            if p.active(out):
                value = getattr(base, p.config_key)
                if p.contains(value):
                    out[p.name] = value
        return out


def load_space(path: str | Path) -> Space:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpaceError(f"space file {path} does not exist.") from None
    return parse_space(text, path)


def parse_space(text: str, path: Path) -> Space:
    """Parse and check a space; every problem names the file and the parameter."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpaceError(f"{path}: not valid TOML: {e}.") from None
    where = str(path)
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        raise SpaceError(
            f"{where}: unknown top-level key(s) {', '.join(unknown)}; expected "
            f"{', '.join(sorted(TOP_KEYS))}."
        )
    base = _base(doc.get("base", "seed"), path)
    fixed = doc.get("fixed", {})
    if not isinstance(fixed, dict):
        raise SpaceError(f"{where}: [fixed] must be a table of config keys.")
    base = _fixed(base, fixed, f"{where} [fixed]")
    raw = doc.get("params")
    if not isinstance(raw, dict) or not raw:
        raise SpaceError(f"{where}: no [params.NAME] tables; a space needs at least one parameter.")
    params: list[Param] = []
    for name, spec in raw.items():
        params.append(_param(name, spec, base, {p.name: p for p in params}, where))
    _check_shared_keys(params, where)
    return Space(path, base, tuple(params), str(doc.get("description", "")), text)


def _fixed(base: Config, changes: dict[str, Any], where: str) -> Config:
    """``base`` with config keys fixed: a space's ``[fixed]`` table or ``start --set``."""
    try:
        return Config.from_dict({**base.to_dict(), **changes}, where=where)
    except ConfigError as e:
        raise SpaceError(str(e)) from None


def _check_shared_keys(params: list[Param], where: str) -> None:
    """Parameters that set one config key must never be active together: each has a ``when``
    on one parameter, with values no two of them share."""
    by_key: dict[str, list[Param]] = {}
    for p in params:
        by_key.setdefault(p.config_key, []).append(p)
    for key, ps in by_key.items():
        if len(ps) < 2:
            continue
        names = ", ".join(repr(p.name) for p in ps)
        parents = {tuple(sorted(p.when)) for p in ps}
        values = [v for p in ps for allowed in p.when.values() for v in allowed]
        if len(parents) != 1 or len(next(iter(parents))) != 1 or len(values) != len(set(values)):
            raise SpaceError(
                f"{where}: parameters {names} all set config key {key!r}; give each a when on "
                f"the same parameter, with values no two of them share."
            )


def _base(value: Any, path: Path) -> Config:
    if not isinstance(value, str):
        raise SpaceError(f"{path}: base must be a preset name or a config JSON path.")
    try:
        if value.endswith(".json"):
            return Config.from_json(path.parent / value)
        return preset(value)
    except ConfigError as e:
        raise SpaceError(f"{path}: base: {e}") from None


def _param(name: str, spec: Any, base: Config, earlier: dict[str, Param], where: str) -> Param:
    at = f"{where}: parameter {name!r}"
    if not isinstance(spec, dict):
        raise SpaceError(f'{at} must be a table with a type, e.g. [params.{name}] type = "float".')
    target = spec.get("key", name)
    if target not in field_names():
        what = f"{at} is not" if target == name else f"{at}: key {target!r} is not"
        raise SpaceError(f"{what} a config key. Config keys: {', '.join(field_names())}.")
    unknown = sorted(set(spec) - PARAM_KEYS)
    if unknown:
        raise SpaceError(
            f"{at}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(PARAM_KEYS))}."
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise SpaceError(f"{at}: type {kind!r} is unknown; choose one of {', '.join(TYPES)}.")
    field_type = field_kind(target)
    if kind in ("float", "int", "bool") and field_type.__name__ != kind:
        raise SpaceError(f"{at} is a {field_type.__name__} config key, not {kind}.")

    def check_value(value: Any, what: str) -> None:
        try:
            base.replace(**{target: value})
        except ConfigError as e:
            raise SpaceError(f"{at}: {what}: {e}") from None

    p = Param(name, kind)
    if kind in ("float", "int"):
        low, high = spec.get("low"), spec.get("high")
        if low is None or high is None:
            raise SpaceError(f"{at}: a {kind} parameter needs low and high.")
        for v, what in ((low, "low"), (high, "high")):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SpaceError(f"{at}: {what} must be a number, got {v!r}.")
            if kind == "int" and not float(v).is_integer():
                raise SpaceError(f"{at}: {what} must be a whole number, got {v!r}.")
        if low > high:
            raise SpaceError(f"{at}: low {low} is above high {high}.")
        log = spec.get("log", False)
        if log and low <= 0:
            raise SpaceError(f"{at}: log scale needs low > 0, got {low}.")
        step = spec.get("step")
        if step is not None and (log or step <= 0):
            raise SpaceError(f"{at}: step must be positive and cannot go with log = true.")
        check_value(low, "low")
        check_value(high, "high")
        p = Param(name, kind, low=low, high=high, log=bool(log), step=step)
    elif kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{at}: choices must be a non-empty list.")
        if len(set(map(repr, choices))) != len(choices):
            raise SpaceError(f"{at}: choices repeat a value: {choices}.")
        for c in choices:
            check_value(c, f"choice {c!r}")
        p = Param(name, kind, choices=tuple(choices))
    else:  # bool
        p = Param(name, "categorical", choices=(False, True))
    for key in ("low", "high", "log", "step") if kind in ("categorical", "bool") else ():
        if key in spec:
            raise SpaceError(f"{at}: {key} does not apply to a {kind} parameter.")
    if kind in ("float", "int", "bool") and "choices" in spec:
        raise SpaceError(f"{at}: choices apply to categorical parameters only.")
    when = _when(spec.get("when"), earlier, at)
    return Param(**{**p.__dict__, "when": when, "key": "" if target == name else target})


def _when(value: Any, earlier: dict[str, Param], at: str) -> dict[str, tuple[Any, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        raise SpaceError(f'{at}: when must be a table like when = {{ optimizer = ["sgd"] }}.')
    out = {}
    for key, allowed in value.items():
        if key not in earlier:
            raise SpaceError(
                f"{at}: when names {key!r}, which is not a parameter declared above it."
            )
        allowed = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        for v in allowed:
            if not earlier[key].contains(v):
                raise SpaceError(f"{at}: when {key} = {v!r} is a value {key} never takes.")
        out[key] = allowed
    return out
