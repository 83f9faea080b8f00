"""--pruner promote: trials pause at rungs and resume from their checkpoints; the study, the
sampler, the locks and the checkpoint store around them."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search.data import resolve_source
from search.errors import UserError
from search.record import Attr, End, ends, epochs_trained, promoted
from search.report import summary, trials_frame
from search.schedulers import promote as promotion
from search.settings import Settings, create_or_resume, load
from search.storage import retry_once
from search.worker import run_worker

TINY_SPACE = Path(__file__).parent / "spaces" / "tiny.toml"
LR = optuna.distributions.FloatDistribution(1e-4, 0.1, log=True)


def settings(**kw):
    options = dict(
        space=str(TINY_SPACE), trials=6, epochs=3, train_size=200, val_size=100, pruner="promote"
    )
    return Settings.from_options(**{**options, **kw})


def segment(number_lr, value, rung=1, state=TrialState.PRUNED, end=End.PAUSED, **attrs):
    """A finished segment made by hand: paused at ``rung`` with ``value`` there."""
    return create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params={"learning_rate": number_lr},
        distributions={"learning_rate": LR},
        intermediate_values={rung: value},
        user_attrs={Attr.END: end, Attr.RUNG: rung, Attr.CHECKPOINT: f"ckpt-{number_lr}", **attrs},
    )


def made_study(name, values, url=None, **kw):
    """A promote study whose first segments, one per value, paused at rung 1."""
    s = settings(**kw)
    study, _ = create_or_resume(name, url, s, given=set(), enqueue_seed=False)
    for i, v in enumerate(values):
        study.add_trial(segment(1e-3 * (i + 1), v))
    return study, s


# --- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(eta=1), "--eta must be at least 2"),
        (dict(first_rung=4), "--first-rung must be between 1 and the study's --epochs (3)"),
        (dict(first_rung=0), "--first-rung must be between 1"),
        (dict(engine="kerastuner"), "KerasTuner has its own"),
        (dict(bootstrap=-1), "--bootstrap must be 0 or more, got -1"),
    ],
)
def test_bad_promote_options_are_refused_by_name(options, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings(**options)


def test_training_state_a_pause_cannot_keep_is_refused(tmp_path):
    space = tmp_path / "ema.toml"
    space.write_text(
        TINY_SPACE.read_text() + "\n[params.ema]\ntype = 'float'\nlow = 0.9\nhigh = 0.99\n"
    )
    with pytest.raises(UserError, match="ema cannot survive"):
        settings(space=str(space))


# --- the promotion rule in a study ------------------------------------------------------------


def test_a_lost_resume_leaves_its_parent_promotable_and_is_not_retried():
    study, s = made_study("lost", [0.5, 0.4, 0.3])
    assert promotion.promote_next(study, s) == 0  # the best of three, top 1/3
    child = study.ask()  # the queued resume
    assert child.user_attrs[Attr.RESUME_OF] == 0 and child.user_attrs[Attr.RUNG] == 3
    assert promotion.promote_next(study, s) is None  # promoted once, never twice
    frozen = study._storage.get_trial(child._trial_id)
    study._storage.set_trial_state_values(child._trial_id, state=TrialState.FAIL)  # its worker died
    assert "promotable again" in retry_once(study, frozen)
    assert not study.get_trials(states=(TrialState.WAITING,))  # no retry queued
    assert 0 not in promoted(study.get_trials())
    assert promotion.promote_next(study, s) == 0  # resumed once more


def test_a_paused_segment_whose_checkpoint_is_gone_is_passed_over():
    """Only paused segments not yet promoted can be chosen, so only their checkpoints are
    looked up (one lookup each, not one per segment of the study)."""
    study, s = made_study("gone", [0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    study.add_trial(segment(1e-3, 0.6, rung=3, state=TrialState.COMPLETE, end=End.COMPLETE,
                            **{Attr.RESUME_OF: 0}))  # fmt: skip
    opened = []

    class Store:
        def open_reader(self, artifact):
            opened.append(artifact)
            if artifact == "ckpt-0.002":  # the second best's checkpoint was lost
                raise FileNotFoundError(artifact)
            return contextlib.nullcontext()

    # trial 0 went on, so trial 1 is next in the top 6 // 3, but its checkpoint is gone
    assert promotion.promote_next(study, s, store=Store()) is None
    assert sorted(opened) == [f"ckpt-{1e-3 * i:g}" for i in range(2, 7)]
    assert promotion.promote_next(study, s) == 1  # with its checkpoint there, it would go on


def test_bootstrap_waits_for_more_configs_but_never_past_the_studys_own():
    study, s = made_study("boot", [0.5, 0.4, 0.3], bootstrap=4)
    assert promotion.promote_next(study, s) is None  # 3 of the 4 wanted at rung 1
    study.add_trial(segment(0.05, 0.6))
    assert promotion.promote_next(study, s) == 3  # the best of four
    small, s3 = made_study("boot3", [0.5, 0.4, 0.3], bootstrap=6, trials=3)
    assert promotion.promote_next(small, s3) == 0  # a 3-config study waits for its 3 only


def test_new_studies_trim_the_rung_below_the_top_and_older_studies_keep_theirs():
    new = settings(epochs=4)
    assert promotion.rung_list(new) == [1, 4]  # not 1, 3, 4: a rung just below the top
    study = optuna.create_study()
    new.store(study)
    stored = json.loads(study.user_attrs["settings"])
    del stored["trim_rungs"]  # a study made before the key existed
    study.set_user_attr("settings", json.dumps(stored))
    assert promotion.rung_list(Settings.of(study)) == [1, 3, 4]  # its paused trials still count


def test_promote_is_the_default_where_configs_can_pause_and_hyperband_elsewhere(tmp_path):
    plain = dict(space=str(TINY_SPACE), trials=2, epochs=3, train_size=200, val_size=100)
    assert Settings.from_options(**plain).pruner == "promote"
    assert Settings.from_options(**plain, engine="kerastuner").pruner == "hyperband"
    ema = tmp_path / "ema.toml"
    ema.write_text(TINY_SPACE.read_text().replace("[fixed]\n", "[fixed]\nema = 0.99\n", 1))
    assert Settings.from_options(**{**plain, "space": str(ema)}).pruner == "hyperband"
    assert Settings.from_options(**plain, pruner="median").pruner == "median"


def test_two_workers_racing_promote_a_segment_once(monkeypatch):
    """Both workers decide at the same moment (each takes 0.3 s to decide): the study-wide
    lock lets one of them promote; the other then finds nothing to promote."""
    race_to_promote(monkeypatch, url=None)


def race_to_promote(monkeypatch, url):
    real = promotion.entries

    def slow_entries(*a, **k):
        out = real(*a, **k)
        time.sleep(0.3)
        return out

    monkeypatch.setattr(promotion, "entries", slow_entries)

    def race(name):
        study, s = made_study(name, [0.5, 0.4, 0.3], url=url)
        got = []
        workers = [
            threading.Thread(target=lambda: got.append(promotion.promote_next(study, s)))
            for _ in range(2)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sorted(got, key=str), study.get_trials(states=(TrialState.WAITING,))

    got, waiting = race("race")
    assert got == [0, None] and len(waiting) == 1
    # the test can fail: without the lock, both workers promote trial 0
    monkeypatch.setattr(promotion, "study_lock", lambda study: contextlib.nullcontext())
    got, waiting = race("race-unlocked")
    assert got == [0, 0] and len(waiting) == 2


def test_checkpoints_go_once_no_promotion_can_use_them():
    """Six configs, eta 3: at most 6 // 3 = 2 of a rung can ever go on, so the third and
    lower need no checkpoint; a promoted segment needs none once its next one finished."""
    study, s = made_study("ckpt", [0.9, 0.8, 0.7, 0.6])
    assert promotion.needless_checkpoints(study.get_trials(), s) == ["ckpt-0.003", "ckpt-0.004"]
    study.add_trial(segment(1e-3, 0.95, rung=3, state=TrialState.COMPLETE, end=End.COMPLETE,
                            **{Attr.RESUME_OF: 0}))  # fmt: skip
    needless = promotion.needless_checkpoints(study.get_trials(), s)
    assert needless == ["ckpt-0.001", "ckpt-0.003", "ckpt-0.004"]


def test_the_sampler_sees_each_config_once_at_its_furthest_finished_segment():
    study, s = made_study("view", [0.5, 0.4, 0.3])
    view = promotion._StudyView(study)
    promotion.promote_next(study, s)
    child = study.ask()
    assert [t.number for t in view.get_trials()] == [0, 1, 2, 3]  # running: parent still seen
    study.tell(child, 0.7)
    seen = view._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert [t.number for t in seen] == [1, 2, 3]  # trial 0 is superseded by trial 3
    # and a TPE sampler behind the view samples from it
    sampler = promotion.LatestSegments(optuna.samplers.TPESampler(seed=0, n_startup_trials=2))
    t = optuna.load_study(study_name="view", storage=study._storage, sampler=sampler).ask()
    assert 1e-4 <= t.suggest_float("learning_rate", 1e-4, 0.1, log=True) <= 0.1


# --- a real study ---------------------------------------------------------------------------


def test_a_promote_study_pauses_screens_and_resumes(tiny_data):
    """Real models, budgets and checkpoint artifacts; training stood in for (its exact resume
    is tests/test_pause.py's)."""
    s = settings()  # 6 configs, 3 epochs: rungs at 1 and 3
    create_or_resume("promo", None, s, given=set(), enqueue_seed=True)
    run_worker("promo", None, resolve_source(tiny_data), train=fake_train)
    study, _ = load("promo")
    trials = study.get_trials()
    firsts = [t for t in trials if Attr.RESUME_OF not in t.user_attrs]
    resumed = [t for t in trials if Attr.RESUME_OF in t.user_attrs]
    assert len(firsts) == 6 and all(t.user_attrs[Attr.EPOCHS] == 1 for t in firsts)
    assert resumed and all(t.state == TrialState.COMPLETE for t in resumed)
    for t in resumed:  # each trained epochs 2 and 3 only, from its parent's checkpoint
        assert t.user_attrs[Attr.EPOCHS] == 2 and sorted(t.intermediate_values) == [2, 3]
        assert t.params == trials[t.user_attrs[Attr.RESUME_OF]].params
    at_rung_1 = sorted(firsts, key=lambda t: (-t.intermediate_values[1], t.number))
    assert {t.number for t in at_rung_1[:2]} <= {t.user_attrs[Attr.RESUME_OF] for t in resumed}
    end = {n: e for n, (e, _) in ends(study).items()}
    assert {end[t.number] for t in firsts} == {End.PAUSED, End.PROMOTED}
    assert sum(end[t.number] == End.PROMOTED for t in firsts) == len(resumed)
    trained = 6 + 2 * len(resumed)
    assert f"epochs trained {trained} of 18 without pruning (6 configs x 3)" in summary(study, s)
    frame = trials_frame(study, s.space())
    assert list(frame["rung"]) == [t.user_attrs[Attr.RUNG] for t in trials]
    # no checkpoint outlives its use: the promoted ones' segments finished, the rest rank
    # below the 2 of 6 that could ever go on
    left = list((Path(promotion.checkpoint_store("promo")._base_path)).glob("*"))
    paused = [t for t in firsts if end[t.number] == End.PAUSED]
    ranked = [t.number for t in at_rung_1 if t in paused]
    assert len(left) == len([n for n in ranked if at_rung_1.index(trials[n]) < 2])


def fake_train(model, config, split, *, on_epoch, verbose, backup_dir=None, pause_at=None):
    """Stands in for training a segment: a value per epoch that depends on the config, the
    epoch it reached kept in ``backup_dir`` as a real run keeps its state."""
    from search.training import RunResult

    done = backup_dir / "epoch"
    start = int(done.read_text()) if done.exists() else 0
    stop = pause_at or config.epochs
    values = [min(0.9, config.learning_rate * 10 + 0.05 * e) for e in range(start + 1, stop + 1)]
    for e, v in zip(range(start + 1, stop + 1), values):
        on_epoch(e, {"val_accuracy": v})
    backup_dir.mkdir(parents=True, exist_ok=True)
    done.write_text(str(stop))
    status = "paused" if stop < config.epochs else "complete"
    return RunResult(status, stop, 0.0, {"loss": [1.0] * len(values), "val_accuracy": values})


def test_ctrl_c_during_a_resume_then_start_again_keeps_the_paused_configs(tiny_data):
    s = settings()
    create_or_resume("ctrlc", None, s, given=set(), enqueue_seed=True)
    resumes = []

    def interrupt_first_resume(model, config, split, **kw):
        if kw["pause_at"] == 3 and not resumes:
            resumes.append(1)
            raise KeyboardInterrupt
        return fake_train(model, config, split, **kw)

    with pytest.raises(KeyboardInterrupt):
        run_worker("ctrlc", None, resolve_source(tiny_data), train=interrupt_first_resume)
    study, _ = load("ctrlc")
    stopped = study.get_trials()[-1]
    assert stopped.state == TrialState.FAIL and stopped.user_attrs[Attr.END] == End.INTERRUPTED
    parent = stopped.user_attrs[Attr.RESUME_OF]
    left = len(list(Path(promotion.checkpoint_store("ctrlc")._base_path).glob("*")))
    assert left == 2  # the paused configs that could still go on (2 of 6) keep theirs
    run_worker("ctrlc", None, resolve_source(tiny_data), train=fake_train)  # start again
    trials = load("ctrlc")[0].get_trials()
    again = [t for t in trials if t.user_attrs.get(Attr.RESUME_OF) == parent]
    assert [t.state for t in again] == [TrialState.FAIL, TrialState.COMPLETE]
    assert sum(Attr.RESUME_OF not in t.user_attrs for t in trials) == 6


def test_a_wsd_study_ranks_each_rung_by_its_cooldown_branch(tiny_data, tmp_path):
    """With schedule = "wsd" a segment's value at its rung is the cooldown branch's score
    (not the trunk's epoch), promotion follows it, and the branch's epochs are counted."""
    space = tmp_path / "wsd.toml"
    space.write_text(TINY_SPACE.read_text().replace("[fixed]", '[fixed]\nschedule = "wsd"'))
    s = settings(space=str(space))  # 6 configs, 3 epochs: rungs at 1 and 3

    def branching_train(model, config, split, **kw):
        r = fake_train(model, config, split, **kw)
        if r.status == "paused":  # the trunk ranks by lr; the branch the other way round
            r.rung_value, r.cooldown_steps = 0.9 - config.learning_rate * 5, 2
        return r

    create_or_resume("wsdp", None, s, given=set(), enqueue_seed=True)
    run_worker("wsdp", None, resolve_source(tiny_data), train=branching_train)
    study, _ = load("wsdp")
    trials = study.get_trials()
    firsts = [t for t in trials if Attr.RESUME_OF not in t.user_attrs]
    for t in firsts:
        lr = t.user_attrs[Attr.CONFIG]["learning_rate"]
        assert t.intermediate_values == {1: pytest.approx(0.9 - lr * 5)}
        assert t.user_attrs[Attr.COOLDOWN_EPOCHS] == pytest.approx(2 / 7, abs=1e-4)  # 7 steps
    by_branch = sorted(firsts, key=lambda t: (-t.intermediate_values[1], t.number))
    resumed = {t.user_attrs[Attr.RESUME_OF] for t in trials if Attr.RESUME_OF in t.user_attrs}
    assert {t.number for t in by_branch[:2]} <= resumed
    assert epochs_trained(trials) == pytest.approx(6 + 2 * len(resumed) + 6 * 2 / 7, abs=0.01)
