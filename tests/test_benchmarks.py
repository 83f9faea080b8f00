"""Benchmark scripts: what they do with their inputs, without running their measurements."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import run_script

from benchmarks.search_efficiency import interval, space_for, summarise, verdict

OTHER_TASK = {"space": "seed.toml", "train_images": 9, "val_images": 9, "epochs_per_trial": 1}


@pytest.mark.parametrize(
    "content",
    [{"task": OTHER_TASK, "curve": [[1, 0.5]], "seconds": 1.0}, [[1, 0.5]]],
    ids=["another task", "older file without a task"],
)
def test_search_efficiency_refuses_a_work_folder_from_another_task(tmp_path, content):
    finished = tmp_path / "a_tpe_hyperband-s0.curve.json"
    finished.write_text(json.dumps(content))
    r = run_script(
        "benchmarks/search_efficiency.py", "--seeds", "1", "--methods", "a_tpe_hyperband",
        "--work", str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 1
    assert "was measured for task" in r.stderr and "new --work folder" in r.stderr
    assert "Traceback" not in r.stderr
    assert finished.exists()  # the finished run is kept


@pytest.mark.slow
def test_ablation_writes_its_variants_and_their_deltas_to_the_full_recipe(tmp_path, synthetic_npz):
    r = run_script(
        "benchmarks/ablation.py", "--data", str(synthetic_npz), "--train-size", "100",
        "--val-size", "50", "--epochs", "1", "--only", "full recipe,lookahead off",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    figures = json.loads((tmp_path / "ablation.json").read_text())["figures"]
    assert figures["finished"] == "2 of 2 runs"
    rows = figures["variants"]
    assert set(rows) == {"full recipe", "lookahead off", "flip TTA off", "shift TTA off"}
    assert rows["full recipe"]["delta_vs_full"] == 0
    off = rows["lookahead off"]
    assert off["change"] == {"lookahead": False}
    assert off["delta_vs_full"] == off["val_accuracy"] - rows["full recipe"]["val_accuracy"]
    assert len(off["curve"]) == 1


def test_ablation_seeds_make_rows_per_seed_and_resume_trains_only_what_is_missing(
    tmp_path, synthetic_npz
):
    args = ["benchmarks/ablation.py", "--data", str(synthetic_npz), "--train-size", "100",
            "--val-size", "50", "--epochs", "1", "--out", str(tmp_path)]  # fmt: skip
    assert run_script(*args, "--only", "full recipe", "--seeds", "0,1").returncode == 0
    path = tmp_path / "ablation.json"
    first = json.loads(path.read_text())["figures"]["variants"]
    assert first["full recipe (seed 1)"]["change"] == {"seed": 1}
    path.write_text(path.read_text().replace(str(first["full recipe"]["train_seconds"]), "-1"))
    r = run_script(*args, "--only", "full recipe,wsd schedule", "--seeds", "0,1", "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    figures = json.loads(path.read_text())["figures"]
    rows = figures["variants"]
    assert figures["finished"] == "4 of 4 runs"
    assert rows["full recipe"]["train_seconds"] == -1  # kept, not trained again
    wsd1 = rows["wsd schedule (seed 1)"]
    assert wsd1["change"] == {"schedule": "wsd", "cooldown": 0.2, "seed": 1}
    assert wsd1["delta_vs_full"] == (
        wsd1["val_accuracy"] - rows["full recipe (seed 1)"]["val_accuracy"]
    )  # against the full recipe of its own seed
    other = run_script(*args[:-4], "--epochs", "2", "--out", str(tmp_path), "--resume")
    assert other.returncode != 0 and "holds another task" in other.stderr


def test_ablation_refuses_an_unknown_variant_before_loading_any_data(tmp_path):
    r = run_script(
        "benchmarks/ablation.py", "--data", str(tmp_path / "absent.zip"),
        "--only", "full recipe,whitening of", "--out", str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 2
    assert "unknown variant(s) ['whitening of']" in r.stderr and "whitening off" in r.stderr
    assert "absent.zip" not in r.stderr  # it stopped before reading --data
    assert not (tmp_path / "ablation.json").exists()


TASK = {"space": "seed.toml", "train_images": 9, "val_images": 9, "epochs_per_trial": 3,
        "epoch_budget": 12, "seeds": 2}  # fmt: skip


def efficiency(a, d):
    curves = {
        "a_tpe_hyperband": a,
        "c_random_no_pruning": [[(3, 0.4), (6, 0.5), (12, 0.5)], [(3, 0.6), (12, 0.6)]],
        "d_kerastuner_hyperband": d,
    }
    return summarise(curves, {k: [1.0, 1.0] for k in curves}, TASK)


def test_search_efficiency_target_met_when_a_reaches_c_in_a_third_and_never_trails_d():
    a = [[(1, 0.2), (3, 0.56), (12, 0.6)], [(4, 0.6), (12, 0.7)]]  # c's mean final best: 0.55
    d = [[(3, 0.3), (12, 0.5)], [(3, 0.3), (12, 0.5)]]
    f = efficiency(a, d)
    assert f["final_best_of_c_mean"] == pytest.approx(0.55)
    assert f["methods"]["a_tpe_hyperband"]["epochs_to_reach_final_best_of_c"] == [3, 4]
    t = f["target"]
    assert t["third_of_budget"] == 4
    assert t["a_reaches_c_within_a_third"] and t["a_not_worse_than_d"]
    assert t["a_minus_d_at_budget"] == pytest.approx(0.65 - 0.5)


def test_interval_is_the_t_interval_of_the_mean_and_none_from_one_seed():
    i = interval([0.5, 0.7, float("nan")])  # NaN: a seed with no finished trial yet
    assert i["mean"] == pytest.approx(0.6) and i["n"] == 2
    # t(0.975, 1) = 12.706; sd 0.1414 / sqrt 2 = 0.1
    assert i["high"] - i["mean"] == pytest.approx(12.706 * 0.1, rel=1e-3)
    one = interval([0.5])
    assert one["mean"] == 0.5 and one["low"] != one["low"]  # NaN: no interval from one seed


def test_against_kerastuner_pairs_seeds_and_picks_the_default_by_the_target():
    c = [[(3, 0.4), (12, 0.5)], [(3, 0.6), (12, 0.6)], [(4, 0.5), (12, 0.55)]]
    d = [[(3, 0.3), (12, 0.5)], [(3, 0.3), (12, 0.5)], [(3, 0.3), (12, 0.52)]]
    ahead = [[(3, 0.5), (12, 0.6)], [(4, 0.65), (12, 0.7)], [(2, 0.6), (12, 0.6)]]
    late = [[(3, 0.45), (5, 0.9)], [(4, 0.45), (5, 0.9)], [(2, 0.45), (5, 0.9)]]
    curves = {"c_random_no_pruning": c, "d_kerastuner_hyperband": d, "g_tpe_default": ahead,
              "h_tpe_promote_wsd": late}  # fmt: skip
    task = {**TASK, "seeds": 3}
    k = summarise(curves, {m: [1.0] * 3 for m in curves}, task)["against_kerastuner"]
    assert k["at_epochs"] == [4, 6, 12] and k["seeds_paired"] == 3
    g, h = k["methods"]["g_tpe_default"], k["methods"]["h_tpe_promote_wsd"]
    # paired by seed at 12 epochs: 0.6-0.5, 0.7-0.5, 0.6-0.52
    assert g["minus_kerastuner"]["12"]["mean"] == pytest.approx((0.1 + 0.2 + 0.08) / 3)
    assert g["share_reaching_c_within_a_third"] == 1.0 and g["target_met"]
    # h ends far ahead but never reaches random's final best within 4 epochs on any seed
    assert h["share_reaching_c_within_a_third"] == 0.0 and not h["target_met"]
    assert h["mean_best_from_a_third"] > g["mean_best_from_a_third"]
    assert k["default"] == {"method": "g_tpe_default", "meets_target": True}
    # when nothing meets it, the best mean from a third of the budget on is the default
    del curves["g_tpe_default"]
    k = summarise(curves, {m: [1.0] * 3 for m in curves}, task)["against_kerastuner"]
    assert k["default"] == {"method": "h_tpe_promote_wsd", "meets_target": False}


def test_a_seed_without_a_complete_trial_counts_as_chance_when_the_default_is_picked():
    nan = float("nan")
    c = [[(3, 0.4), (12, 0.5)], [(3, 0.6), (12, 0.6)], [(4, 0.5), (12, 0.55)]]
    d = [[(3, 0.3), (12, 0.5)]] * 3
    steady = [[(3, 0.5), (12, 0.55)]] * 3
    late = [[(3, nan), (10, 0.6)]] * 3  # nothing to hand on before epoch 10
    curves = {"c_random_no_pruning": c, "d_kerastuner_hyperband": d, "g_tpe_default": steady,
              "h_tpe_promote_wsd": late}  # fmt: skip
    k = summarise(curves, {m: [1.0] * 3 for m in curves}, {**TASK, "seeds": 3})
    rows = k["against_kerastuner"]["methods"]
    # from a third (epoch 4) to 12: six epochs at chance, three at 0.6
    assert rows["h_tpe_promote_wsd"]["mean_best_from_a_third"] == pytest.approx(2.4 / 9)
    assert k["against_kerastuner"]["default"]["method"] == "g_tpe_default"


def test_a_method_with_fixed_keys_searches_a_copy_of_the_space_with_them(tmp_path):
    from search.space import load_space

    seed = Path(__file__).resolve().parents[1] / "spaces" / "seed.toml"
    assert space_for("g_tpe_default", seed, tmp_path) == seed
    copy = space_for("h_tpe_promote_wsd", seed, tmp_path)
    assert copy.parent == tmp_path
    space = load_space(copy)
    assert space.base.schedule == "wsd" and space.params == load_space(seed).params


def test_search_efficiency_target_missed_when_a_is_late_or_trails_d_at_some_epoch():
    late = [[(3, 0.35), (5, 0.56), (12, 0.6)], [(4, 0.6), (12, 0.7)]]  # seed 0 needs 5 > 4
    d = [[(3, 0.3), (12, 0.5)], [(3, 0.3), (12, 0.5)]]
    t = efficiency(late, d)["target"]
    assert t["a_epochs_to_reach_final_best_of_c"] == [5, 4]
    assert not t["a_reaches_c_within_a_third"] and t["a_not_worse_than_d"]
    never = [[(3, 0.2), (12, 0.3)], [(3, 0.2), (12, 0.7)]]  # seed 0 never gets there
    strong_d = [[(3, 0.9), (12, 0.9)], [(3, 0.3), (12, 0.3)]]  # mean 0.6 throughout
    t = efficiency(never, strong_d)["target"]
    assert t["a_epochs_to_reach_final_best_of_c"] == [None, 12]
    assert not t["a_reaches_c_within_a_third"]
    assert not t["a_not_worse_than_d"] and t["a_minus_d_at_equal_epochs_worst"] < 0
    assert t["a_minus_d_at_budget"] == pytest.approx(0.5 - 0.6)


def test_torch_reference_without_torch_says_how_to_install_it(tmp_path):
    code = (  # as if PyTorch were not installed: its import fails
        "import sys, runpy\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ImportError(name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        f"sys.argv = ['torch_reference.py', '--out', r'{tmp_path}']\n"
        "runpy.run_path('benchmarks/torch_reference.py', run_name='__main__')\n"
    )
    r = run_script("-c", code)
    assert r.returncode == 1
    assert "pip install torch==2.13.0" in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())


def test_f_is_judged_from_its_own_epoch_count_on():
    """(f)'s target: reach (c)'s final best within ``within`` epochs on every seed and never
    trail (d) from there on; trailing before it does not count."""
    a = d = [[(3, 0.3), (12, 0.5)], [(3, 0.3), (12, 0.5)]]
    f = efficiency(a, d)
    f["methods"]["f_tpe_promote"] = efficiency(
        [[(2, 0.1), (4, 0.55), (12, 0.6)], [(4, 0.6), (12, 0.6)]], d
    )["methods"]["a_tpe_hyperband"]
    t = verdict(f, "f_tpe_promote", within=4)
    assert t["a_epochs_to_reach_final_best_of_c"] == [4, 4]
    assert t["a_reaches_c_within_a_third"] and t["a_not_worse_than_d"]
    assert not verdict(f, "f_tpe_promote")["a_not_worse_than_d"]  # from its first trial: trails


class _Sleepy:
    """A model of known cost: a training step sleeps 20 ms, a validation step 40 ms."""

    @staticmethod
    def compiled(*args, steps_per_execution=1, **kwargs):
        import time

        import keras

        class Sleepy(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(10)

            def call(self, x):
                return self.dense(keras.ops.reshape(x, (-1, 32 * 32 * 3)))

            def train_step(self, data):
                time.sleep(0.02)
                return {"loss": 0.0}

            def test_step(self, data):
                time.sleep(0.04)
                return {"loss": 0.0}

        model = Sleepy()
        model.compile(optimizer="sgd", run_eagerly=True, steps_per_execution=steps_per_execution)
        return model


def test_throughput_times_both_sides_alike_on_a_model_of_known_cost(monkeypatch):
    """10 training batches of 20 ms and 5 validation batches of 40 ms an epoch: each side's
    timer reads 0.2 s of training and 0.2 s of validation, apart (one counted in the other
    would read 0.4 s), plus each epoch's own overhead (its data iterator)."""
    from conftest import make_arrays

    from benchmarks import throughput
    from search import training
    from search.config import Config
    from search.data import Split

    monkeypatch.setattr(training, "compile_for_training", _Sleepy.compiled)
    x, y, xv, yv = make_arrays(100, 50)
    config = Config(width1=8, width2=8, width3=8, dense_units=16, batch_size=10, epochs=3)
    for name, steps in (("plain_fit", 1), ("ours", 4)):
        f = throughput.Side(name, steps).run(config, Split(x, y, xv, yv))
        assert all(0.2 <= s < 0.38 for s in f["train_seconds"][1:]), (name, f)
        assert all(0.2 <= s < 0.38 for s in f["val_seconds"][1:]), (name, f)
        assert 100 / 0.38 < f["train_images_per_s"] <= 100 / 0.2


def test_the_epoch_timer_splits_an_epoch_into_stall_batches_and_validation():
    """A stall before the first batch (as Keras' autotuned pipelines make) is counted apart
    from the batches, and a second batch does not restart the clock."""
    import time

    from search.callbacks import EpochTimer

    timer = EpochTimer()
    for epoch, validate in ((0, True), (1, False)):
        timer.on_epoch_begin(epoch)
        time.sleep(0.05)
        for batch in range(2):
            timer.on_train_batch_begin(batch)
            time.sleep(0.05)
        if validate:
            timer.on_test_begin()
            time.sleep(0.03)
            timer.on_test_end()
        timer.on_epoch_end(epoch)
    assert len(timer.stall) == len(timer.train) == 2 and len(timer.val) == 1
    assert all(0.05 <= s < 0.09 for s in timer.stall), timer.stall
    assert all(0.1 <= s < 0.14 for s in timer.train), timer.train
    assert 0.03 <= timer.val[0] < 0.07, timer.val


def test_benchmark_option_mistakes_are_refused_before_anything_is_measured(tmp_path):
    absent = str(tmp_path / "absent.zip")
    for args, message in (
        (("benchmarks/throughput.py", "--presets", "nope"), "invalid choice: 'nope'"),
        (("benchmarks/trial_cost.py", "--quick-rounds", "1"), "--quick-rounds needs --before"),
        (
            ("benchmarks/search_efficiency.py", "--fresh", "f_tpe_promot"),
            "unknown methods f_tpe_promot",
        ),
    ):
        r = run_script(*args, "--data", absent)
        assert r.returncode == 2, r.stderr[-2000:]
        assert message in r.stderr
        assert "Traceback" not in r.stderr and "absent.zip" not in r.stderr


def test_fidelity_draws_near_the_base_differ_from_uniform_and_keep_its_values_more_often():
    from benchmarks.fidelity import draws
    from search.settings import resolve_space_path
    from search.space import load_space

    space = load_space(resolve_space_path("fast"))
    uniform, near = draws(space, 30, 0), draws(space, 30, 0, prior="base")
    assert uniform[0] == near[0] == space.base_point()  # the base config first, in both
    assert uniform == draws(space, 30, 0)  # the committed pool's draws are reproduced
    base = space.base_point()

    def kept(points):  # how often a draw keeps the base's categorical values
        keys = [k for k, v in base.items() if isinstance(v, str | bool)]
        return sum(p.get(k) == base[k] for p in points[1:] for k in keys)

    assert kept(near) > kept(uniform) * 1.3


def test_fidelity_figures_of_one_schedule_rank_its_rungs_against_its_full_runs():
    from benchmarks.fidelity import figures

    def entry(rung, full):
        return {"full": full, "rung_values": {"2": rung, "6": full}, "params": 1,
                "curve": [0.1] * 6, "cooldown_epochs": 0.0}  # fmt: skip

    res = {"onecycle": {i: entry(r, f) for i, (r, f) in
                        enumerate([(0.3, 0.7), (0.5, 0.6), (0.4, 0.5), (0.2, 0.4)])}}  # fmt: skip
    f = figures(res, [2, 6])
    one = f["onecycle"]
    assert one["base_rank_full"] == 1 and one["per_rung"]["2"]["base_rank"] == 3
    assert one["draws_beating_base"] == 0
    assert one["per_rung"]["2"]["spearman_vs_full"] == pytest.approx(0.4)
    assert "wsd_full_vs_onecycle_full_spearman" not in f


def test_proof_counts_each_stage_in_epochs_of_50k_and_compares_tested_runs(tmp_path):
    import optuna

    from benchmarks.proof import runs_stage, search_stage, tested

    def trial(epochs, cooldown, seconds):
        attrs = {"epochs": epochs, "seconds": seconds}
        if cooldown:
            attrs["cooldown_epochs"] = cooldown
        return optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs=attrs)

    # two segments at 10,000 images: 1 + 0.25 and 2 epochs, 3.25 epochs = 0.65 of 50,000
    stage = search_stage([trial(1, 0.25, 100.0), trial(2, 0, 200.0)], 10_000)
    assert stage == {"trials": 2, "epochs_of_50k": 0.65, "seconds": 300.0}

    def run(name, acc, images=45_000, tta=None):
        r = tmp_path / name
        r.mkdir()
        (r / "train.json").write_text(json.dumps(
            {"epochs": 10, "train_images": images, "train_seconds": 600.0}))  # fmt: skip
        (r / "test_metrics.json").write_text(json.dumps({
            "run": name, "accuracy": acc, "accuracy_tta_flip_shift": tta, "params": 405_354,
            "latency_p50_ms": 1.234}))  # fmt: skip
        return r

    a, b, untested = run("a", 0.80, tta=0.81), run("b", 0.82, 50_000), tmp_path / "c"
    untested.mkdir()
    assert runs_stage([a, b, untested]) == {"runs": 2, "epochs_of_50k": 19.0, "seconds": 1200.0}
    assert runs_stage([untested]) is None
    t = tested([a, b, untested], "accuracy")
    assert t["values"] == [0.80, 0.82] and t["mean"] == pytest.approx(0.81)
    assert t["std"] == pytest.approx(0.0141421, abs=1e-6) and t["latency_p50_ms"] == [1.23] * 2
    one = tested([a, b], "accuracy_tta_flip_shift")  # a metric a run did not measure is left out
    assert one["values"] == [0.81] and one["std"] == 0.0
    assert tested([untested], "accuracy") is None


def test_proof_row_names_both_metrics_when_the_pick_is_tested_with_the_tta_its_race_chose():
    from benchmarks.proof import row

    def t(mean):
        return {"mean": mean, "std": 0.001, "values": [mean] * 2, "params": 405_354,
                "latency_p50_ms": [1.9]}  # fmt: skip

    figures = {"metric": "accuracy_tta_flip_shift", "baseline_metric": "accuracy",
               "stages": {"search": None}, "baseline": t(0.8231), "pick": t(0.8450),
               "pick_plain": t(0.8378), "pick_minus_baseline": 0.0219}  # fmt: skip
    line = row("seedrace", figures)
    assert "0.8231 ± 0.0010 (2 seeds), 405,354 params, p50 1.9 ms (accuracy) |" in line
    assert "(accuracy_tta_flip_shift; plain 0.8378) | +2.19 points | search not run |" in line
    same = row("seedrace", {**figures, "baseline_metric": "accuracy_tta_flip_shift"})
    assert "plain 0.8378" not in same and "(accuracy)" not in same


def test_proof_first_rung_correlates_each_config_once_and_counts_choices(tmp_path):
    from benchmarks.proof import first_rung

    csv = tmp_path / "trials.csv"  # 4 configs at rung 1 (one without a score), one promoted
    csv.write_text(
        "number,rung,value,param_lr,param_momentum,param_act\n"
        "0,1,0.40,0.004,,gelu\n"
        "1,1,0.50,0.003,0.9,elu\n"
        "2,1,0.60,0.002,0.5,elu\n"
        "3,1,0.70,0.001,0.7,elu\n"
        "4,1,,0.0005,0.1,gelu\n"
        "5,3,0.10,0.003,0.9,elu\n"  # config 1 at rung 3: not a first-rung score
    )
    f = first_rung(csv)
    assert f["configs"] == 4 and f["spearman"]["lr"] == -1.0
    assert f["spearman"]["momentum"] == pytest.approx(-0.5)  # the three with a momentum
    assert f["drawn"] == {"act": {"elu": 3, "gelu": 1}} and f["rung"] == 1
    assert first_rung(tmp_path / "none.csv") is None
    later = tmp_path / "later.csv"  # a study with --first-rung 2: rungs 2 and 6
    later.write_text(
        "number,rung,value,param_lr\n0,2,0.40,0.004\n1,2,0.50,0.003\n2,2,0.60,0.002\n"
        "3,6,0.10,0.003\n"
    )
    f = first_rung(later)
    assert f["rung"] == 2 and f["configs"] == 3 and f["spearman"] == {"lr": -1.0}


def test_cpu_env_runs_each_variant_with_its_own_settings_only(monkeypatch):
    from types import SimpleNamespace

    from benchmarks import cpu_env

    seen, written = [], {}

    def fake_run(cmd, env, **kwargs):  # a child: fast only where oneDNN is on
        seen.append({k: env.get(k) for k in cpu_env.SETTINGS})
        speed = 250.0 if env.get("TF_ENABLE_ONEDNN_OPTS") == "1" else 100.0
        r = {"train_images_per_s": speed, "latency_p50_ms": 5.0, "minor_page_faults": 1}
        r |= {"system_cpu_s": 1.0, "user_cpu_s": 9.0}
        return SimpleNamespace(stdout="noise\nRESULT " + json.dumps(r) + "\n")

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")  # the caller's own must not leak into default
    monkeypatch.setattr(cpu_env.subprocess, "run", fake_run)
    monkeypatch.setattr(cpu_env, "write", lambda name, figures: written.update(figures))
    argv = ["cpu_env.py", "--rounds", "2", "--variants", "default", "onednn"]
    monkeypatch.setattr(sys, "argv", argv)
    cpu_env.main()
    assert [s["TF_ENABLE_ONEDNN_OPTS"] for s in seen] == [None, "1", "1", None]  # alternating
    assert written["onednn"]["ratio_to_default_median"] == 2.5
    assert written["default"]["train_images_per_s_median"] == 100.0


def _race(root: Path, study: str, rows: list[tuple[int, bool, float, dict, list[float]]]):
    race_dir = root / study / "final" / "race"
    cands = []
    for trial, base, score, config, curve in rows:
        run = race_dir / f"trial-{trial}"
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps(config))
        lines = ["epoch,val_accuracy"] + [f"{i},{v}" for i, v in enumerate(curve)]
        (run / "history.csv").write_text("\n".join(lines) + "\n")
        cands.append({"trial": trial, "base": base, "score": score})
    race_dir.joinpath("race.json").write_text(json.dumps({"candidates": cands}))


def test_rung_fidelity_dedupes_a_config_raced_twice_and_judges_rungs_by_the_race(tmp_path):
    from argparse import Namespace

    from benchmarks.rung_fidelity import group_figures, pairs_agreeing, raced

    preset = {"width1": 64, "seed": 0, "val_size": 5000}
    a, b = {"width1": 96, "seed": 0}, {"width1": 32, "seed": 0}
    _race(tmp_path, "s1", [(0, True, 0.90, preset, [0.5, 0.6]), (7, False, 0.86, a, [0.7, 0.8])])
    _race(tmp_path, "s2", [(0, True, 0.88, {**preset, "seed": 1}, [0.5, 0.6]),
                           (3, False, 0.87, b, [0.4, 0.9])])  # fmt: skip
    entries = raced(tmp_path, ["s1", "s2"])
    assert len(entries) == 3  # the preset once, its two race scores averaged
    base = next(e for e in entries if e["base"])
    assert base["race"] == pytest.approx(0.89) and base["names"] == ["s1#0", "s2#0"]

    # a rung that puts the base first and the rest as the race does agrees on all 3 pairs
    by_name = {e["names"][0]: e["key"] for e in entries}
    runs = {
        f"race_split|{by_name['s1#0']}": {"rung_values": {"1": 0.6}, "train_seconds": 10.0},
        f"race_split|{by_name['s1#7']}": {"rung_values": {"1": 0.4}, "train_seconds": 10.0},
        f"race_split|{by_name['s2#3']}": {"rung_values": {"1": 0.5}, "train_seconds": 10.0},
    }
    args = Namespace(rungs=[1, 2], small_rungs=[1])
    f = group_figures(entries, runs, args)
    assert f["base_rank_race"] == 1
    rung = f["kinds"]["race_split"]["1"]
    assert rung["base_rank"] == 1 and rung["pairs_as_race"] == "3 of 3"
    assert f["kinds"]["small"] == {}  # not run: no figure, not a zero
    curve = f["kinds"]["race_curve"]["1"]  # the race runs' epoch 1: the base ranks second
    assert curve["base_rank"] == 2 and curve["pairs_as_race"] == "1 of 3"
    assert f["train_seconds"]["race_split"] == 30.0
    assert pairs_agreeing([1.0, 2.0, 3.0], [3.0, 2.0, 2.0]) == (0, 2)  # ties in the race skip


def test_rung_fidelity_refuses_a_study_without_a_race_before_training(tmp_path, capsys):
    from benchmarks.rung_fidelity import main

    _race(tmp_path, "s1", [(0, True, 0.9, {"width1": 64}, [0.5])])
    with pytest.raises(SystemExit):
        main(["fast:s1,nope", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert "study 'nope' has no race" in err and "--race K" in err
    with pytest.raises(SystemExit):
        main(["fast", "--results", str(tmp_path)])
    assert "write SPACE:STUDY" in capsys.readouterr().err
