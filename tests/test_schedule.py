"""Promotion ASHA's decision logic (search/schedulers/asha.py) and the tabular replay
(benchmarks/replay.py) on made-up curves whose schedule can be worked out by hand."""

from __future__ import annotations

import math

import pytest

from benchmarks import replay as R
from search.schedulers.asha import Entry, next_promotion, next_rung, rungs

NAN = float("nan")


# --- rungs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "r, eta, top, expected",
    [
        (1, 3, 6, [1, 3, 6]),
        (2, 3, 6, [2, 6]),
        (1, 2, 6, [1, 2, 4, 6]),
        (2, 2, 6, [2, 4, 6]),
        (1, 4, 6, [1, 6]),  # 4 is less than sqrt(4) below 6: trimmed
        (6, 3, 6, [6]),
        (1, 3, 9, [1, 3, 9]),
        (1, 3, 4, [1, 4]),
        (2, 3, 8, [2, 8]),
        (1, 3, 10, [1, 3, 10]),
        (1, 2, 5, [1, 2, 5]),
        (3, 3, 4, [3, 4]),  # the first rung is never trimmed
    ],
)
def test_rungs(r, eta, top, expected):
    assert rungs(r, eta, top) == expected


@pytest.mark.parametrize(
    "r, eta, top, expected",
    [(1, 3, 4, [1, 3, 4]), (2, 3, 8, [2, 6, 8]), (1, 4, 6, [1, 4, 6]), (1, 3, 6, [1, 3, 6])],
)
def test_rungs_untrimmed_as_older_studies_keep_them(r, eta, top, expected):
    assert rungs(r, eta, top, trim=False) == expected


@pytest.mark.parametrize(
    "r, eta, top, named",
    [(1, 1, 6, "eta"), (1, 0, 6, "eta"), (0, 3, 6, "r \\(the first rung"), (7, 3, 6, "max_epochs")],
)
def test_rungs_refuses_bad_options_by_name(r, eta, top, named):
    with pytest.raises(ValueError, match=named):
        rungs(r, eta, top)


def test_next_promotion_refuses_eta_below_2():
    with pytest.raises(ValueError, match="eta"):
        next_promotion([], [1, 3, 6], 1)


# --- the promotion rule -----------------------------------------------------------------------


def at(rung: int, *values: float, first: int = 0) -> list[Entry]:
    return [Entry(first + i, rung, v) for i, v in enumerate(values)]


def test_only_the_top_floor_n_over_eta_are_promotable():
    es = at(1, 0.1, 0.6, 0.3, 0.5, 0.2, 0.4)  # n = 6, eta 3: the best two (trials 1, 3)
    assert next_promotion(es, [1, 3, 6], 3) == es[1]
    es[1] = Entry(1, 1, 0.6, promoted=True)
    assert next_promotion(es, [1, 3, 6], 3) == es[3]
    es[3] = Entry(3, 1, 0.5, promoted=True)
    assert next_promotion(es, [1, 3, 6], 3) is None  # the third best (0.4) is not in the top 2
    es.append(Entry(6, 1, 0.0))  # n = 7: still floor(7 / 3) = 2
    assert next_promotion(es, [1, 3, 6], 3) is None
    es += at(1, 0.05, 0.01, first=7)  # n = 9: the top 3 now, so 0.4 (trial 5) goes
    assert next_promotion(es, [1, 3, 6], 3) == Entry(5, 1, 0.4)


def test_nothing_promotable_with_fewer_than_eta_entries():
    assert next_promotion(at(2, 0.9, 0.8), [2, 6], 3) is None
    assert next_promotion(at(2, 0.9, 0.8, 0.7), [2, 6], 4) is None
    assert next_promotion(at(2, 0.9, 0.8), [2, 6], 2) == Entry(0, 2, 0.9)


def test_bootstrap_waits_for_that_many_entries_before_promoting():
    es = at(2, 0.9, 0.8, 0.7)  # n = 3, eta 3: ASHA promotes the best at once
    assert next_promotion(es, [2, 6], 3) == es[0]
    assert next_promotion(es, [2, 6], 3, bootstrap=4) is None  # a wider choice first
    es.append(Entry(3, 2, 0.95))  # the fourth: now the best of four goes
    assert next_promotion(es, [2, 6], 3, bootstrap=4) == es[3]
    assert next_promotion(at(2, 0.9), [2, 6], 2, bootstrap=1) is None  # eta's floor still holds
    # rungs above the first: eta's rule alone (their entries were chosen already)
    assert next_promotion(at(6, 0.9, 0.8, 0.7), [2, 6, 18], 3, bootstrap=4) == Entry(0, 6, 0.9)


def test_the_top_rung_is_served_first():
    low = at(1, 0.9, 0.2, 0.3)  # trial 0 promotable at rung 1
    high = at(3, 0.4, 0.5, 0.45, first=10)  # trial 11 promotable at rung 3
    assert next_promotion(low + high, [1, 3, 6], 3) == Entry(11, 3, 0.5)
    done = [*low, Entry(10, 3, 0.4), Entry(11, 3, 0.5, True), Entry(12, 3, 0.45)]
    assert next_promotion(done, [1, 3, 6], 3) == Entry(0, 1, 0.9)  # then down a rung


def test_never_promotes_twice():
    es = [Entry(0, 1, 0.9, promoted=True), Entry(1, 1, 0.1), Entry(2, 1, 0.2)]
    assert next_promotion(es, [1, 3, 6], 3) is None
    assert next_promotion(es, [1, 3, 6], 2) is None  # top 1 of 3 is trial 0, already gone


def test_nan_is_never_promoted_and_ranks_last():
    assert next_promotion(at(1, NAN, NAN, NAN), [1, 3, 6], 3) is None
    assert next_promotion(at(1, NAN, NAN, 0.1), [1, 3, 6], 3) == Entry(2, 1, 0.1)
    es = at(1, NAN, 0.1, 0.2, 0.3)  # eta 2: top 2 are 0.3 and 0.2
    assert next_promotion(es, [1, 3, 6], 2) == Entry(3, 1, 0.3)


def test_ties_go_to_the_lower_trial_number():
    es = [Entry(7, 1, 0.5), Entry(3, 1, 0.5), Entry(5, 1, 0.1)]
    assert next_promotion(es, [1, 3, 6], 3) == Entry(3, 1, 0.5)


def test_entries_off_the_rungs_are_ignored_and_duplicates_refused():
    assert next_promotion(at(6, 0.9, 0.8, 0.7) + at(2, 0.9, 0.8, 0.7), [1, 3, 6], 3) is None
    with pytest.raises(ValueError, match="twice"):
        next_promotion([Entry(1, 1, 0.5), Entry(1, 1, 0.6)], [1, 3, 6], 2)


def test_next_rung():
    assert next_rung([1, 3, 6], 1) == 3 and next_rung([1, 3, 6], 3) == 6


# --- the replay -------------------------------------------------------------------------------


def linear(v2: float) -> R.Curve:
    """A 6-epoch curve worth ``v2`` after epoch 2 and ``v2 + 0.1`` after epoch 6."""
    return (v2 - 0.05, v2, v2 + 0.02, v2 + 0.04, v2 + 0.06, v2 + 0.1)


POOL = [linear(v) for v in (0.2, 0.5, 0.3, 0.1, 0.4, 0.6)]  # configs a..f


def test_promotion_asha_by_hand_one_worker():
    m = R.PromotionASHA(range(6), POOL, 6, r=2, eta=3)
    curve, trained = R.simulate(m, workers=1, budget=20)
    # a, b, c to 2 epochs; 3 at the rung: b (best) resumed 2 -> 6; d, e, f; 6 at the rung:
    # the top 2 are f and b, b is done: f resumed; then the budget (20) is spent
    assert m.promoted == [(1, 2), (5, 2)]
    assert [x for x, _ in curve] == [2, 4, 6, 10, 12, 14, 16, 20]
    assert math.isnan(curve[2][1]) and curve[3][1] == pytest.approx(0.6)
    assert curve[-1][1] == pytest.approx(0.7)
    assert trained == {0: 2, 1: 6, 2: 2, 3: 2, 4: 2, 5: 6}


def test_promotion_asha_with_bootstrap_by_hand():
    m = R.PromotionASHA(range(6), POOL, 6, r=2, eta=3, bootstrap=4)
    curve, trained = R.simulate(m, workers=1, budget=20)
    # a, b, c, d to 2 epochs; 4 at the rung: b (best of four) resumed; e, f: 6 at the rung,
    # the top 2 are f and b: f resumed; the budget (20) is then spent
    assert m.promoted == [(1, 2), (5, 2)]
    assert [x for x, _ in curve] == [2, 4, 6, 8, 12, 14, 16, 20]
    assert curve[4][1] == pytest.approx(0.6) and curve[-1][1] == pytest.approx(0.7)


def test_promotion_asha_by_hand_two_workers():
    m = R.PromotionASHA(range(6), POOL, 6, r=2, eta=3)
    curve, trained = R.simulate(m, workers=2, budget=16)
    # t=2: a, b paused; c, d start. t=4: 4 at the rung, top 1 is b: worker 0 resumes b,
    # worker 1 starts e. t=6: e paused (5 at the rung, still top 1): f starts. t=8: b
    # completes (worker 0 first), f pauses; 16 epochs spent, nothing more starts.
    assert m.promoted == [(1, 2)]
    assert [x for x, _ in curve] == [2, 4, 6, 8, 10, 14, 16]
    assert curve[-2][1] == pytest.approx(0.6) and curve[-1][1] == pytest.approx(0.6)
    assert trained == {0: 2, 1: 6, 2: 2, 3: 2, 4: 2, 5: 2}


def test_random_search_and_short_curves():
    pool = [(), (0.1, 0.2, NAN), linear(0.3)]  # over budget; diverged after 3; complete
    curve, trained = R.simulate(R.RandomSearch([0, 1, 2], pool, 6), workers=1, budget=9)
    assert [x for x, _ in curve] == [0, 3, 9]
    assert math.isnan(curve[1][1]) and curve[2][1] == pytest.approx(0.4)
    assert trained == {0: 0, 1: 3, 2: 6}
    # the budget is checked when a job starts: the 4th config of 6 epochs still runs
    curve, _ = R.simulate(R.RandomSearch(range(6), POOL, 6), workers=1, budget=20)
    assert [x for x, _ in curve] == [6, 12, 18, 24]
    assert R.best_at(curve, 20) == pytest.approx(0.6) and R.best_at(curve, 5) == 0.0
    assert R.epochs_to_reach(curve, 0.6) == 12 and R.epochs_to_reach(curve, 0.9) == math.inf
    assert R.best_grid(curve, 20).tolist() == [R.best_at(curve, e) for e in range(1, 21)]


def test_asha_ignores_a_config_that_ends_before_its_rung():
    pool = [(0.9,), linear(0.2), linear(0.3), linear(0.25)]
    m = R.PromotionASHA(range(4), pool, 6, r=2, eta=3)
    curve, trained = R.simulate(m, workers=1, budget=11)
    assert trained == {0: 1, 1: 2, 2: 6, 3: 2}  # 3 at the rung once config 3 is there
    assert m.promoted == [(2, 2)]


@pytest.mark.parametrize("boot, pruned", [(0, [(2, 2), (3, 2), (4, 2)]), (2, [(0, 2), (1, 2)])])
def test_optuna_successive_halving_by_hand(boot, pruned):
    m = R.StoppingSH(range(6), POOL, 6, min_resource=2, eta=3, bootstrap=boot)
    R.simulate(m, workers=1, budget=24)
    # bootstrap 0: a and b lead their rung and go on; c, d, e are below the best of <6 values.
    # bootstrap 2: a, b stopped (<= 2 values); c (0.3 < 0.5) too; d: 4 values, top 1 is
    # 0.5 -> stopped; e: 0.4 -> stopped; f leads -> complete (2+2+2+2+2+6 = 16, then budget)
    assert m.pruned[: len(pruned)] == pruned
    if boot == 2:
        assert m.pruned == [(0, 2), (1, 2), (2, 2), (3, 2), (4, 2)]


def test_kerastuner_hyperband_bracket_arithmetic():
    pool = [linear(v) for v in (0.2, 0.5, 0.3, 0.1, 0.4, 0.6, 0.35, 0.15)]
    m = R.KerasTunerHyperband(range(8), pool, 6)
    curve, trained = R.simulate(m, workers=1, budget=36)
    # bracket 1: 5 configs to 2 epochs, the best 2 (b, e) continued 2 -> 6 for 4 epochs each;
    # bracket 0: 3 configs straight to 6. 10 + 8 + 18 = 36 epochs.
    assert m.continued == [(1, 2), (4, 2)]
    assert trained == {0: 2, 1: 6, 2: 2, 3: 2, 4: 6, 5: 6, 6: 6, 7: 6}
    assert [x for x, _ in curve] == [2, 4, 6, 8, 10, 14, 18, 24, 30, 36]
    assert curve[5][1] == pytest.approx(0.6) and curve[-1][1] == pytest.approx(0.7)


def test_kerastuner_hyperband_four_workers_start_the_next_bracket_while_waiting():
    pool = [linear(v) for v in (0.2, 0.5, 0.3, 0.1, 0.4, 0.6, 0.35, 0.15)]
    m = R.KerasTunerHyperband(range(8), pool, 6)
    curve, trained = R.simulate(m, workers=4, budget=20)
    # t=2: a-d done; e fills round 0; 4 done > 5 - 2: b continued; 3 left is not > 3, so
    # bracket 0 starts (f, g). t=4: e done: 4 candidates again, e continued. t=6: b done,
    # bracket 1 is full: h starts. t=8: e, f, g end (30 epochs); h still ends (36).
    assert m.continued == [(1, 2), (4, 2)]
    assert [x for x, _ in curve] == [2, 4, 6, 8, 10, 14, 18, 24, 30, 36]
    assert trained == {0: 2, 1: 6, 2: 2, 3: 2, 4: 6, 5: 6, 6: 6, 7: 6}


def test_optuna_hyperband_brackets_follow_the_budgets():
    bracket_of = R.optuna_hyperband_brackets("replay-0", 6)  # 2 brackets, budgets 3 and 2
    share = sum(bracket_of(n) == 0 for n in range(5000)) / 5000
    assert 0.55 < share < 0.65


def test_replay_figures_on_a_made_up_pool():
    f = R.replay(POOL, orders=30, budget=24, workers=1, seed=0)
    c = f["c_random"]
    assert len(c["mean_best"]) == 24 and c["reach_c_final"]["frac_never"] == 0.0
    assert all(
        m["reach_c_final"]["median"] is None or m["reach_c_final"]["median"] > 0 for m in f.values()
    )
    rec = R.recommend(f, start=16)
    assert set(rec["versus_peer"]) == {n for n in f if n.startswith("asha_")}


def test_load_pool_shifts_zero_based_steps_and_keeps_short_curves(tmp_path):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = tmp_path / "pool.log"
    study = optuna.create_study(
        study_name="pool",
        direction="maximize",
        storage=JournalStorage(JournalFileBackend(str(path))),
    )
    t = study.ask()
    for step in range(6):
        t.report(0.1 * (step + 1), step)
    t.set_user_attr("epochs", 6)
    study.tell(t, 0.6)
    t = study.ask()
    t.set_user_attr("epochs", 0)
    study.tell(t, state=optuna.trial.TrialState.PRUNED)
    curves, facts = R.load_pool(path)
    assert facts["steps_zero_based"] and facts["oracle"] == pytest.approx(0.6)
    assert curves[0] == pytest.approx((0.1, 0.2, 0.3, 0.4, 0.5, 0.6)) and curves[1] == ()
