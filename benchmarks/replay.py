"""Tabular replay of search schedulers over a pool of real learning curves, in seconds.

The pool: Optuna journal files, each with one study of configs trained straight through (the
validation accuracy after each epoch as the trial's intermediate values). The replay draws
configs from the pool without replacement in a random order (a random sampler: it cannot model
TPE, whose draws depend on what it has seen) and plays each method on the same order, with W
workers and one epoch costing one time unit. A resumed or continued config follows its own
straight-through curve: its value after epoch e is the pool's value after epoch e.

Methods: (c) random search, every trial trained to the full epochs; promotion ASHA
(``search/schedulers/asha.py``) for r in {1, 2} and eta in {2, 3, 4}; stopping successive halving as
Optuna's ``SuccessiveHalvingPruner(min_resource=2, reduction_factor=3)`` ships it, with
bootstrap_count 2 and 0; Optuna's ``HyperbandPruner(min_resource=1, max_resource=6,
reduction_factor=3)``; (d) KerasTuner's synchronous ``Hyperband(max_epochs=6, factor=3)``,
its oracle replayed step by step (a continued config loads its weights and costs only the new
epochs). As in the project, the pruners never prune after the last epoch.

Accounting, as in ``benchmarks/search_efficiency.py``: a job's epochs count when it ends (a
trial, or for ASHA and KerasTuner one leg between rungs); no job starts once the epochs of
ended jobs reach the budget (running ones finish). "Best so far" after E epochs = the best
value after the full epochs among configs trained that far by then; 0.0 while there is none.

Short curves: a trial with k < full epochs trained (diverged, stopped) is a config that ends
after epoch k, its later values do not exist and it never counts as complete; a missing or
non-finite value is NaN (never promoted; Optuna's reporter skips it). A trial that trained
0 epochs (over the parameter or latency budget) costs 0 epochs.

Usage: ``python benchmarks/replay.py [--pool PATH ...] [--orders 2000] [--budget 48]
[--workers 1,4] [--seed 0] [--dedupe] [--name replay]``.
"""

from __future__ import annotations

import argparse
import binascii
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search.schedulers.asha import Entry, next_promotion, next_rung, rungs  # noqa: E402

POOL = ROOT.parent / "shared" / "data" / "pools" / "seed-5k2k-6ep-r40.log"
NAN = float("nan")

Curve = tuple[float, ...]  # value after epoch e at index e - 1; its length: epochs it can train


# --- the pool ---------------------------------------------------------------------------------


def load_pool(path: Path, study: str = "pool", max_epochs: int = 6) -> tuple[list[Curve], dict]:
    """The study's curves (on a temp copy: the file is never opened for writing), and facts."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        storage = JournalStorage(JournalFileBackend(str(copy)))
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    steps = {s for t in finished for s in t.intermediate_values}
    shift = 1 if 0 in steps else 0  # steps are epochs (1-based); a 0-based pool is moved up
    curves, params = [], []
    for t in finished:
        iv = {s + shift: v for s, v in t.intermediate_values.items()}
        trained = int(t.user_attrs.get("epochs", max(iv, default=0)))
        trained = min(trained, max_epochs)
        curves.append(tuple(_finite(iv.get(e, NAN)) for e in range(1, trained + 1)))
        params.append(json.dumps(t.params, sort_keys=True))
    full = [c[-1] for c in curves if len(c) == max_epochs and c[-1] == c[-1]]
    facts = {
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "study": study,
        "trials": len(trials),
        "used": len(curves),
        "skipped_states": sorted({t.state.name for t in trials} - {"COMPLETE", "PRUNED"}),
        "steps_zero_based": bool(shift),
        "short_curves": sum(len(c) < max_epochs for c in curves),
        "distinct_configs": len(set(params)),
        "oracle": max(full, default=NAN),
    }
    return curves, {**facts, "_params": params}


def _finite(v: float) -> float:
    return float(v) if v is not None and math.isfinite(v) else NAN


def dedupe(curves: list[Curve], params: list[str]) -> list[Curve]:
    """One curve per distinct config (the first trial of each)."""
    seen: dict[str, Curve] = {}
    for c, p in zip(curves, params):
        seen.setdefault(p, c)
    return list(seen.values())


# --- the simulator ----------------------------------------------------------------------------


@dataclass
class Job:
    """Train config ``cfg`` (trial ``trial`` of the method) from epoch ``start`` to ``stop``."""

    trial: int
    cfg: int
    start: int
    stop: int
    epoch: int = 0


class Method:
    """A scheduler: hands out jobs, hears each epoch's value and each job's end."""

    def __init__(self, order: Sequence[int], pool: Sequence[Curve], max_epochs: int):
        self.order, self.pool, self.max_epochs = list(order), pool, max_epochs
        self.drawn = 0  # trials started (configs drawn from the order)

    def draw(self) -> tuple[int, int] | None:
        """(trial number, config) of the next config in the order; None once it is spent."""
        if self.drawn >= len(self.order):
            return None
        self.drawn += 1
        return self.drawn - 1, self.order[self.drawn - 1]

    def next_job(self) -> Job | None:
        raise NotImplementedError

    def report(self, job: Job, epoch: int, value: float) -> bool:
        """After each epoch: go on? (Only the stopping pruners say no.)"""
        return True

    def end(self, job: Job, value: float) -> None:
        """The job ended after ``job.epoch`` epochs with this value (NaN: none)."""


def simulate(
    method: Method, workers: int = 1, budget: int = 48
) -> tuple[list[tuple[int, float]], dict]:
    """Event-driven replay: each time unit every busy worker trains one epoch, workers in index
    order; a free worker takes a job while the ended jobs' epochs are under ``budget``. Returns
    the anytime curve ((epochs spent, best complete value so far) after each ended job) and
    ``{cfg: epochs trained}`` per config."""
    pool, full = method.pool, method.max_epochs
    running: list[Job | None] = [None] * workers
    spent, best = 0, NAN
    curve: list[tuple[int, float]] = []
    trained: dict[int, int] = {}

    def finish(job: Job, value: float) -> None:
        nonlocal spent, best
        spent += job.epoch - job.start
        trained[job.cfg] = trained.get(job.cfg, 0) + job.epoch - job.start
        if job.epoch == full and value == value:
            best = value if best != best else max(best, value)
        method.end(job, value)
        curve.append((spent, best))

    while True:
        for w in range(workers):
            while running[w] is None and spent < budget:
                job = method.next_job()
                if job is None:
                    break
                job.epoch = job.start
                if min(job.stop, len(pool[job.cfg])) <= job.start:  # nothing to train: 0 epochs
                    finish(job, NAN)
                else:
                    running[w] = job
        if all(j is None for j in running):
            return curve, trained
        for w, job in enumerate(running):
            if job is None:
                continue
            c = pool[job.cfg]
            job.epoch += 1
            value = c[job.epoch - 1]
            go_on = method.report(job, job.epoch, value)
            if not go_on or job.epoch >= min(job.stop, len(c)):
                finish(job, value)
                running[w] = None


# --- the methods ------------------------------------------------------------------------------


class RandomSearch(Method):
    """(c): every config trained straight through the full epochs."""

    def next_job(self) -> Job | None:
        d = self.draw()
        return None if d is None else Job(d[0], d[1], 0, self.max_epochs)


class PromotionASHA(Method):
    """Promotion ASHA: pause at every rung; resume the :func:`next_promotion` first."""

    def __init__(self, order, pool, max_epochs, *, r: int, eta: int, bootstrap: int = 0):
        super().__init__(order, pool, max_epochs)
        self.eta, self.rungs, self.bootstrap = eta, rungs(r, eta, max_epochs), bootstrap
        self.entries: dict[tuple[int, int], Entry] = {}
        self.cfg: dict[int, int] = {}
        self.promoted: list[tuple[int, int]] = []  # (trial, from rung), in order

    def next_job(self) -> Job | None:
        e = next_promotion(self.entries.values(), self.rungs, self.eta, self.bootstrap)
        if e is not None:
            self.entries[e.trial, e.rung] = replace(e, promoted=True)
            self.promoted.append((e.trial, e.rung))
            return Job(e.trial, self.cfg[e.trial], e.rung, next_rung(self.rungs, e.rung))
        d = self.draw()
        if d is None:
            return None
        self.cfg[d[0]] = d[1]
        return Job(d[0], d[1], 0, self.rungs[0])

    def end(self, job: Job, value: float) -> None:
        if job.epoch == job.stop < self.max_epochs:  # paused at a rung (not ended early)
            self.entries[job.trial, job.epoch] = Entry(job.trial, job.epoch, value)


class StoppingSH(Method):
    """Optuna's SuccessiveHalvingPruner, and with ``brackets`` its HyperbandPruner.

    A trial's checks are at ``min_resource * eta ** (rate + k)`` epochs, ``rate`` its bracket's
    index; at a check its value joins the values recorded at that rung (by trials of its
    bracket, pruned ones included) and it goes on only if more than ``bootstrap`` values are
    there and it is at least the ``max(n // eta, 1)``-th best of those ``n``. Never pruned after
    the last epoch; a NaN value is not reported, so a check looks at the last finite one."""

    def __init__(
        self,
        order,
        pool,
        max_epochs,
        *,
        min_resource: int,
        eta: int,
        bootstrap: int,
        bracket_of: Callable[[int], int] = lambda trial: 0,
    ):
        super().__init__(order, pool, max_epochs)
        self.min_resource, self.eta, self.bootstrap = min_resource, eta, bootstrap
        self.bracket_of = bracket_of
        self.values: dict[tuple[int, int], list[float]] = {}  # (bracket, rung) -> values
        self.state: dict[int, list] = {}  # trial -> [bracket, next rung, last finite (step, v)]
        self.pruned: list[tuple[int, int]] = []  # (trial, epoch)

    def next_job(self) -> Job | None:
        d = self.draw()
        if d is None:
            return None
        self.state[d[0]] = [self.bracket_of(d[0]), 0, None]
        return Job(d[0], d[1], 0, self.max_epochs)

    def report(self, job: Job, epoch: int, value: float) -> bool:
        st = self.state[job.trial]
        if value == value:
            st[2] = (epoch, value)
        if epoch >= self.max_epochs or st[2] is None:
            return True
        bracket, step, v = st[0], st[2][0], st[2][1]
        while step >= self.min_resource * self.eta ** (bracket + st[1]):
            competing = self.values.setdefault((bracket, st[1]), [])
            competing.append(v)
            st[1] += 1
            n = len(competing)
            kth = sorted(competing, reverse=True)[max(n // self.eta - 1, 0)]
            if n <= self.bootstrap or v < kth:
                self.pruned.append((job.trial, epoch))
                return False
        return True


def optuna_hyperband_brackets(study_name: str, max_epochs: int, min_resource=1, eta=3):
    """Optuna's HyperbandPruner bracket of a trial number: crc32 of ``"{study}_{number}"``
    modulo the brackets' summed allocation budgets ``ceil(n_brackets * eta**s / (s + 1))``."""
    n = math.floor(math.log(max_epochs / min_resource, eta)) + 1
    budgets = [math.ceil(n * eta ** (n - 1 - b) / (n - b)) for b in range(n)]

    def bracket_of(trial: int) -> int:
        x = binascii.crc32(f"{study_name}_{trial}".encode()) % sum(budgets)
        for b, size in enumerate(budgets):
            x -= size
            if x < 0:
                return b
        raise AssertionError("unreachable")

    return bracket_of


class KerasTunerHyperband(Method):
    """KerasTuner's ``HyperbandOracle.populate_space``, step by step (``hyperband_iterations``
    unbounded, as the project runs it). Bracket b (from the largest down), round i: size
    ``ceil(ceil(1 + log_f(max)) / (b + 1) * f**(b - i))`` configs trained to
    ``ceil(max / f**(b - i))`` epochs; a round's next slot goes to the best completed,
    not yet chosen trial of the round before once more than ``past_size - size`` of them are
    done; otherwise the next bracket starts. Score = value after the job's last epoch; a config
    with nothing to train is a failed trial that keeps its slot, as in KerasTuner."""

    def __init__(self, order, pool, max_epochs, *, factor: int = 3):
        super().__init__(order, pool, max_epochs)
        self.f = factor
        n, e = 0, float(max_epochs)
        while e >= 1:
            e, n = e / factor, n + 1
        self.n_brackets, self.current = n, n - 1
        self.end0 = math.ceil(1 + math.log(max_epochs, factor))
        self.brackets: list[dict] = [self._bracket(self.current)]
        self.trials: dict[int, dict] = {}  # KerasTuner trial id -> cfg, status, score
        self.next_id = 0
        self.continued: list[tuple[int, int]] = []  # (cfg, from epochs)

    def _size(self, b: int, i: int) -> int:
        return math.ceil(self.end0 / (b + 1) * self.f ** (b - i))

    def _epochs(self, b: int, i: int) -> int:
        return math.ceil(self.max_epochs / self.f ** (b - i))

    def _bracket(self, b: int) -> dict:
        return {"b": b, "rounds": [[] for _ in range(b + 1)]}

    def _new(self, bracket: dict) -> Job | None:
        d = self.draw()
        if d is None:
            return None
        tid, self.next_id = self.next_id, self.next_id + 1
        self.trials[tid] = {"cfg": d[1], "status": "RUNNING", "score": NAN}
        bracket["rounds"][0].append({"past": None, "id": tid})
        return Job(tid, d[1], 0, self._epochs(bracket["b"], 0))

    def next_job(self) -> Job | None:
        self.brackets = [
            br for br in self.brackets if len(br["rounds"][-1]) != self._size(br["b"], br["b"])
        ]
        for br in self.brackets:
            b, rounds = br["b"], br["rounds"]
            if len(rounds[0]) < self._size(b, 0):
                return self._new(br)
            for i in range(1, len(rounds)):
                size, past_size = self._size(b, i), self._size(b, i - 1)
                chosen = {x["past"] for x in rounds[i]}
                cands = [
                    x["id"]
                    for x in rounds[i - 1]
                    if x["id"] not in chosen and self.trials[x["id"]]["status"] == "COMPLETED"
                ]
                if len(cands) > past_size - size:
                    past = max(cands, key=lambda t: self.trials[t]["score"])  # first if tied
                    tid, self.next_id = self.next_id, self.next_id + 1
                    cfg = self.trials[past]["cfg"]
                    self.trials[tid] = {"cfg": cfg, "status": "RUNNING", "score": NAN}
                    rounds[i].append({"past": past, "id": tid})
                    start = self._epochs(b, i - 1)
                    self.continued.append((cfg, start))
                    return Job(tid, cfg, start, self._epochs(b, i))
        self.current -= 1
        if self.current < 0:
            self.current = self.n_brackets - 1
        self.brackets.append(self._bracket(self.current))
        return self._new(self.brackets[-1])

    def end(self, job: Job, value: float) -> None:
        t = self.trials[job.trial]
        trained = job.epoch > job.start
        t["status"] = "COMPLETED" if trained else "FAILED"
        t["score"] = value if value == value else 0.0  # the project's fit reports NaN as 0.0


def methods(max_epochs: int) -> dict[str, Callable[[list[int], list[Curve], str], Method]]:
    """Name -> factory(order, pool, study name) for every method replayed."""
    out: dict[str, Callable] = {
        "c_random": lambda o, p, s: RandomSearch(o, p, max_epochs),
    }
    asha = [(r, eta, 0) for r in (1, 2) for eta in (2, 3, 4)]  # bootstrap 0: ASHA's own rule
    asha += [(1, 3, 4), (1, 3, 6), (2, 3, 4), (2, 3, 5), (2, 3, 6), (2, 2, 4)]
    for r, eta, boot in asha:
        name = f"asha_r{r}_eta{eta}" + (f"_b{boot}" if boot else "")
        out[name] = lambda o, p, s, r=r, eta=eta, b=boot: PromotionASHA(
            o, p, max_epochs, r=r, eta=eta, bootstrap=b
        )
    for boot in (2, 0):
        out[f"optuna_sh_stop_b{boot}"] = lambda o, p, s, boot=boot: StoppingSH(
            o, p, max_epochs, min_resource=2, eta=3, bootstrap=boot
        )
    out["optuna_hyperband"] = lambda o, p, s: StoppingSH(
        o,
        p,
        max_epochs,
        min_resource=1,
        eta=3,
        bootstrap=0,
        bracket_of=optuna_hyperband_brackets(s, max_epochs),
    )
    out["d_kerastuner_hyperband"] = lambda o, p, s: KerasTunerHyperband(o, p, max_epochs)
    return out


# --- figures ----------------------------------------------------------------------------------


def best_at(curve: list[tuple[int, float]], e: int) -> float:
    """Best complete value with at most ``e`` epochs spent; 0.0 while there is none."""
    vals = [b for x, b in curve if x <= e and b == b]
    return max(vals) if vals else 0.0


def best_grid(curve: list[tuple[int, float]], budget: int) -> np.ndarray:
    """``best_at(curve, e)`` for e = 1..budget in one pass (the best never decreases)."""
    g = np.zeros(budget)
    for x, b in curve:
        if b == b and x <= budget:
            g[max(x, 1) - 1 :] = b
    return g


def epochs_to_reach(curve: list[tuple[int, float]], target: float) -> float:
    return next((x for x, b in curve if b == b and b >= target), math.inf)


def replay(
    pool: list[Curve],
    *,
    orders: int,
    budget: int,
    workers: int,
    seed: int,
    max_epochs: int = 6,
    within: int = 16,
) -> dict:
    """Every method on the same ``orders`` random orders; figures per method."""
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(len(pool)).tolist() for _ in range(orders)]
    factories = methods(max_epochs)
    runs = {name: [] for name in factories}
    for k, order in enumerate(perms):
        for name, make in factories.items():
            runs[name].append(simulate(make(order, pool, f"replay-{k}"), workers, budget)[0])
    targets = [best_at(c, budget) for c in runs["c_random"]]
    oracle = max((c[-1] for c in pool if len(c) == max_epochs and c[-1] == c[-1]), default=NAN)
    out = {}
    for name, curves in runs.items():
        mat = np.array([best_grid(c, budget) for c in curves])
        reach = np.array([epochs_to_reach(c, t) for c, t in zip(curves, targets)])
        have = (mat > 0).sum(0)
        given = np.where(have > 0, mat.sum(0) / np.maximum(have, 1), NAN)
        out[name] = {
            "mean_best": mat.mean(0).round(5).tolist(),
            "mean_best_given_complete": [_num(round(x, 5)) for x in given.tolist()],
            "frac_with_complete": (have / len(curves)).round(4).tolist(),
            "final_best_mean": float(mat[:, -1].mean()),
            "final_is_oracle": float((mat[:, -1] >= oracle).mean()),
            "reach_c_final": {
                "median": _num(np.median(reach)),
                "p90": _num(np.percentile(reach, 90, method="higher")),
                f"frac_within_{within}": float((reach <= within).mean()),
                "frac_never": float(np.isinf(reach).mean()),
            },
            "epochs_spent_mean": float(np.mean([c[-1][0] if c else 0 for c in curves])),
        }
    return out


def _num(x: float) -> float | None:
    return None if math.isinf(x) or math.isnan(x) else float(x)


def recommend(
    figures: dict,
    *,
    peer: str = "d_kerastuner_hyperband",
    start: int = 16,
    curve: str = "mean_best",
) -> dict:
    """The promotion ASHA whose mean best is at least the peer's at every epoch count from
    ``start`` to the budget, reaching (c)'s final best earliest (median, then p90, then the
    share within ``start``); None when no setting keeps up with the peer. ``curve``:
    "mean_best" (0.0 while an order has no complete trial) or "mean_best_given_complete"
    (over the orders that have one, as search_efficiency.py averages; epoch counts where
    either has none are skipped there)."""

    def arr(m: dict) -> np.ndarray:
        return np.array([NAN if x is None else x for x in m[curve][start - 1 :]])

    d = arr(figures[peer])
    key, inf = f"frac_within_{start}", math.inf
    fits, below = [], {}
    for name, m in figures.items():
        if name.startswith("asha_"):
            gap = arr(m) - d
            known = gap[~np.isnan(gap)]
            r = m["reach_c_final"]
            rank = (r["median"] or inf, r["p90"] or inf, -r[key])
            fits.append((bool((known >= -1e-9).all()), rank, name))
            below[name] = {
                "worst_gap": round(float(known.min()), 5) if known.size else None,
                "epochs_below": [start + i for i in np.flatnonzero(gap < -1e-9).tolist()],
            }
    keep = sorted(f for f in fits if f[0])
    return {
        "rule": f"{curve} >= {peer}'s at every epoch count from {start}; then earliest to (c)",
        "choice": keep[0][2] if keep else None,
        "earliest_to_c": min(fits, key=lambda f: f[1])[2] if fits else None,
        "versus_peer": below,
    }


def table(figures: dict, within: int = 16) -> str:
    rows = [f"{'method':24} {'final':>7} {'=oracle':>7} {'med':>5} {'p90':>5} {f'<={within}':>5}"]
    for name, m in figures.items():
        r = m["reach_c_final"]
        rows.append(
            f"{name:24} {m['final_best_mean']:7.4f} {m['final_is_oracle']:7.3f} "
            f"{_fmt(r['median']):>5} {_fmt(r['p90']):>5} {r[f'frac_within_{within}']:5.2f}"
        )
    return "\n".join(rows)


def _fmt(x: float | None) -> str:
    return "never" if x is None else f"{x:g}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", nargs="+", default=[str(POOL)], help="Optuna journal files")
    p.add_argument("--study", default="pool")
    p.add_argument("--orders", type=int, default=2000)
    p.add_argument("--budget", type=int, default=48, help="epochs per method and order")
    p.add_argument("--epochs", type=int, default=6, help="epochs of a full trial")
    p.add_argument("--workers", default="1,4", help="worker counts, comma-separated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dedupe", action="store_true", help="one curve per distinct config")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--name", default="replay", help="output name under results/benchmarks/")
    a = p.parse_args()
    t0 = time.perf_counter()
    pool, pools = [], []
    for path in a.pool:
        curves, facts = load_pool(Path(path), a.study, a.epochs)
        params = facts.pop("_params")
        pool += dedupe(curves, params) if a.dedupe else curves
        pools.append(facts)
        if facts["distinct_configs"] < facts["used"]:
            print(
                f"note: {path}: {facts['used']} trials but {facts['distinct_configs']} distinct "
                f"configs ({'deduplicated' if a.dedupe else 'kept as separate draws'})"
            )
    full = [c[-1] for c in pool if len(c) == a.epochs and c[-1] == c[-1]]
    figures: dict = {
        "pools": pools,
        "curves": len(pool),
        "oracle": max(full, default=NAN),
        "task": {"budget": a.budget, "epochs": a.epochs, "orders": a.orders, "seed": a.seed},
        "dedupe": a.dedupe,
        "sampler": "random order without replacement (the replay cannot model TPE)",
        "best_before_first_complete": 0.0,
        "workers": {},
    }
    third = round(a.budget / 3)  # the target's epochs (16 of 48)
    for w in (int(x) for x in a.workers.split(",")):
        f = replay(
            pool, orders=a.orders, budget=a.budget, workers=w, seed=a.seed, max_epochs=a.epochs,
            within=third,
        )  # fmt: skip
        recs = {
            c: recommend(f, curve=c, start=third) for c in ("mean_best", "mean_best_given_complete")
        }
        figures["workers"][str(w)] = {"methods": f, "recommendation": recs}
        print(f"\nW={w}: {a.orders} orders, budget {a.budget} epochs, oracle {figures['oracle']}")
        print(table(f, within=third))
        for c, rec in recs.items():
            print(f"{c}: recommended {rec['choice']}, earliest to (c) {rec['earliest_to_c']}")
            for name, v in rec["versus_peer"].items():
                below = v["epochs_below"]
                span = f"{below[0]}-{below[-1]} ({len(below)})" if below else "-"
                worst = "-" if v["worst_gap"] is None else f"{v['worst_gap']:+.4f}"
                print(f"  {name:14} worst gap to (d) {worst}, below at {span}")
    figures["replay_seconds"] = round(time.perf_counter() - t0, 2)
    print(f"replayed in {figures['replay_seconds']} s")
    if not a.no_write:
        from benchmarks.common import write  # imports Keras: only here, never for the tests

        write(a.name, figures)


if __name__ == "__main__":
    main()
