"""Plots and report on studies built with create_trial (no training): figure data, edge cases,
offline HTML, the dashboard, and the report rendered in headless Chromium."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from search import plots
from search.cli import main
from search.report import BASE_COLUMNS
from search.settings import Settings
from search.storage import open_storage, storage_url

TINY_SPACE = Path(__file__).parent / "spaces" / "tiny.toml"
DISTS = {
    "activation": CategoricalDistribution(("gelu", "leaky_relu", "elu")),
    "learning_rate": FloatDistribution(1e-4, 0.1, log=True),
}


def trial(
    number_params,
    state=TrialState.COMPLETE,
    value=None,
    curve=(),
    end=None,
    latency=3.0,
    n_params=400_000,
    params=None,
    dists=None,
):
    ua = {
        "n_params": n_params,
        "latency_p50_ms": latency,
        "latency_p95_ms": latency * 1.2,
        "epochs": len(curve),
        "end": end or state.name.lower(),
        "config": {},
    }
    return create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params=params or {"activation": "gelu", "learning_rate": 0.01 * (1 + number_params)},
        distributions=dists or DISTS,
        user_attrs=ua,
        intermediate_values={i + 1: v for i, v in enumerate(curve)},
    )


def make_study(name, trials, epochs=3):
    storage = open_storage(storage_url(name, None))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    s = Settings.from_options(
        space=str(TINY_SPACE),
        trials=max(len(trials), 1),
        epochs=epochs,
        train_size=200,
        val_size=100,
        pruner="hyperband",
    )
    s.store(study)
    for t in trials:
        study.add_trial(t)
    return study, s


def mixed_study(name="mixed"):
    return make_study(
        name,
        [
            trial(0, value=0.80, curve=(0.5, 0.7, 0.8), latency=5.0, n_params=500_000),
            trial(1, value=0.70, curve=(0.5, 0.6, 0.7), latency=3.0, n_params=300_000),
            trial(2, value=0.75, curve=(0.6, 0.7, 0.75), latency=6.0, n_params=600_000),
            trial(3, value=0.90, curve=(0.7, 0.8, 0.9), latency=10.0, n_params=900_000),
            trial(4, state=TrialState.PRUNED, curve=(0.3,), end="pruned", latency=4.0),
            trial(5, state=TrialState.PRUNED, end="over_budget", latency=25.0, n_params=1_500_000),
            trial(6, state=TrialState.FAIL, end="error"),
        ],
    )


def test_pareto_front_and_budget_view_data():
    study, s = mixed_study()
    info = plots.pareto_info(study, "latency_p50_ms", s.max_latency_ms)
    assert info.front == [1, 0, 3]  # #2 is beaten by #0: slower and less accurate
    assert [p.number for p in info.over_budget] == [5]
    assert [(p.number, p.value) for p in info.pruned] == [(4, 0.3)]
    fig = plots.pareto_figure(info)
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert list(front.x) == [3.0, 5.0, 10.0] and list(front.y) == [0.7, 0.8, 0.9]
    assert any(shape.x0 == 20.0 for shape in fig.layout.shapes)  # the latency limit
    by_params = plots.pareto_info(study, "n_params", s.max_params)
    assert by_params.front == [1, 0, 3] and by_params.limit == 1_000_000


def test_pareto_front_keeps_ties_and_drops_dominated_points():
    assert plots.pareto_front([(0.9, 1.0), (0.9, 1.0), (0.8, 2.0)]) == [0, 1]
    assert plots.pareto_front([]) == []


def test_importances_rank_the_parameter_that_matters_first():
    rng = np.random.default_rng(0)
    trials = []
    for i in range(40):
        lr = float(10 ** rng.uniform(-4, -1))
        act = str(rng.choice(DISTS["activation"].choices))
        value = 0.9 - 0.1 * abs(np.log10(lr) + 2.5) + rng.normal(0, 0.005)
        trials.append(trial(i, value=value, params={"activation": act, "learning_rate": lr}))
    study, _ = make_study("importances", trials)
    info = plots.importances_info(study)
    assert list(info) == ["learning_rate", "activation"], info
    assert info["learning_rate"] > 0.5 and info["activation"] < 0.05, info
    fig = plots.importances_figure(info)
    assert list(fig.data[0].y) == ["activation", "learning_rate"]  # the largest at the top
    with pytest.raises(ValueError, match="3 complete trials, the study has 2"):
        plots.importances_info(make_study("two", trials[:2])[0])


def test_omega_squared_discounts_chance_and_groups_missing_values():
    y = np.array([0.1, 0.1, 0.1, 0.9, 0.9, 0.9])
    assert plots.omega_squared(y, np.array([0, 0, 0, 1, 1, 1])) > 0.95
    assert plots.omega_squared(y, np.array([0, 1, 0, 1, 0, 1])) == 0.0  # clipped, not negative
    assert plots.omega_squared(y, np.zeros(6, int)) == 0.0  # one group
    groups = plots._groups([None, 0.5, None, 0.1, 0.2, 0.3, 0.4], bins=2)
    assert groups[0] == groups[2] and len(set(groups)) == 3  # not sampled: a group of its own
    assert list(plots._groups(["a", "b", "a"], bins=2)) == [0, 1, 0]


def test_learning_curves_show_pruned_trials_as_such():
    study, _ = mixed_study("curves")
    info = {c.number: c for c in plots.learning_curves_info(study)}
    assert set(info) == {0, 1, 2, 3, 4}  # trials without epochs have no curve
    assert info[4].end == "pruned" and info[4].values == [0.3]
    assert info[3].epochs == [1, 2, 3]
    fig = plots.learning_curves_figure(list(info.values()))
    pruned = next(t for t in fig.data if t.name == "#4 pruned")
    assert pruned.line.dash == "dash" and pruned.marker.symbol[-1] == "x"


def test_summary_counts_epochs_saved():
    study, s = mixed_study("summary")
    info = plots.summary_info(study, s)
    assert info["best"]["number"] == 3 and info["best"]["value"] == 0.9
    assert info["by_end"] == {"complete": 4, "pruned": 1, "over_budget": 1, "error": 1}
    assert info["epochs_trained"] == 13
    assert info["epochs_saved_by_pruning"] == 2 and info["epochs_saved_by_budget_checks"] == 3


def _write(study, s):
    report = plots.write_all(study, s)
    return report, report.parent


@pytest.mark.parametrize(
    "name, trials, dists",
    [
        ("none-complete", [trial(0, TrialState.PRUNED, curve=(0.2,), end="pruned")], None),
        ("single", [trial(0, value=0.5, curve=(0.4, 0.5))], None),
        (
            "all-pruned",
            [
                trial(i, TrialState.PRUNED, curve=(0.2, 0.3)[: i + 1], end="pruned")
                for i in range(2)
            ],
            None,
        ),
        (
            "categorical-only",
            [
                trial(
                    i,
                    value=0.5 + 0.1 * i,
                    curve=(0.5,),
                    params={"activation": a},
                    dists={"activation": DISTS["activation"]},
                )
                for i, a in enumerate(["gelu", "elu", "leaky_relu"])
            ],
            None,
        ),
        (
            "failed-and-over-budget",
            [
                trial(0, TrialState.FAIL, end="error"),
                trial(1, TrialState.PRUNED, end="over_budget", n_params=2_000_000),
                trial(2, value=0.6, curve=(0.6,)),
            ],
            None,
        ),
        ("empty", [], None),
    ],
)
def test_edge_cases_write_every_file(name, trials, dists):
    study, s = make_study(name, trials)
    report, out = _write(study, s)
    for stem in (
        "history",
        "importances",
        "parallel_coordinates",
        "slices",
        "contour",
        "learning_curves",
        "timeline",
        "pareto_latency",
        "pareto_params",
    ):
        assert (out / f"{stem}.html").exists(), stem
    text = report.read_text()
    if not any(t.state == TrialState.COMPLETE for t in trials):
        assert "No complete trial yet" in text
    df = pd.read_csv(out / "trials.csv")
    assert len(df) == len(trials)
    assert list(df.columns[: len(BASE_COLUMNS)]) == list(BASE_COLUMNS)


def test_html_is_offline_with_one_shared_plotly_js():
    study, s = mixed_study("offline")
    report, out = _write(study, s)
    htmls = list(out.glob("*.html"))
    assert len(htmls) == 10
    for h in htmls:
        text = h.read_text()
        assert '<script src="plotly.min.js"' in text or 'src="plotly.min.js"' in text
        assert "cdn.plot.ly" not in text and "https://cdn" not in text
        assert len(text) < 300_000  # plotly.js is not embedded per file
    assert (out / "plotly.min.js").stat().st_size > 1_000_000


def test_trials_csv_has_one_row_per_trial_with_every_column():
    study, s = mixed_study("csv")
    _, out = _write(study, s)
    df = pd.read_csv(out / "trials.csv")
    assert list(df["number"]) == list(range(7))
    assert list(df["end"]) == ["complete"] * 4 + ["pruned", "over_budget", "error"]
    assert {
        "param_activation",
        "param_learning_rate",
        "n_params",
        "latency_p50_ms",
        "epochs",
    } <= set(df.columns)


def test_plots_command(capsys):
    mixed_study("cmd")
    assert main(["plots", "--study", "cmd"]) == 0
    assert "report.html" in capsys.readouterr().out


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_study_storage_opens_in_optuna_dashboard(tmp_path):
    pytest.importorskip("optuna_dashboard")
    mixed_study("dash")
    path = storage_url("dash", None)
    port = _free_port()
    exe = Path(shutil.which("optuna-dashboard") or "")
    if not exe.name:
        pytest.skip("optuna-dashboard command not on PATH")
    proc = subprocess.Popen(
        [str(exe), path, "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = ""
        for _ in range(60):
            try:
                body = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2)
                    .read()
                    .decode()
                )
                break
            except OSError:
                time.sleep(0.5)
        assert '"study_name": "dash"' in body or '"study_name":"dash"' in body
    finally:
        proc.terminate()
        proc.wait(10)


def test_dashboard_without_the_package_says_how_to_install(monkeypatch, capsys):
    import sys

    mixed_study("nodash")
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)
    assert main(["dashboard", "--study", "nodash"]) == 2
    assert "pip install 'cifar10-search[dashboard]'" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args, user_dir):
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={user_dir}",
            # networking off: every connection goes to a dead proxy, every name fails to resolve
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=20000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_renders_its_figures_offline_in_chromium(tmp_path):
    from PIL import Image

    study, s = mixed_study("browser")
    report, _ = _write(study, s)
    dom = _chromium("--dump-dom", report.as_uri(), user_dir=tmp_path / "u1").stdout
    # plotly draws each figure into an svg of class main-svg; 11 figures on the page
    assert dom.count('class="main-svg"') >= 11, dom[:500]
    assert dom.count('class="scatterlayer') >= 5  # the scatter plots have their points drawn
    shot = tmp_path / "shot.png"
    _chromium(
        "--window-size=1200,4000", f"--screenshot={shot}", report.as_uri(), user_dir=tmp_path / "u2"
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert pixels.std() > 10  # not blank
    colours = {tuple(p) for p in pixels[::7, ::7].reshape(-1, 3).astype(int)}
    assert len(colours) > 50  # lines, markers and colour scales, not just text on white
