"""Parameter and latency budgets."""

from __future__ import annotations

import pytest

from search import budget
from search.config import PRESETS
from search.models import build_model


def test_measure_times_a_compiled_function_not_predict(monkeypatch):
    model = build_model(PRESETS["seed"])
    monkeypatch.setattr(model, "predict", lambda *a, **k: pytest.fail("timed model.predict"))
    m = budget.measure(model, warmup=3, runs=20)
    assert m.params == 405_354
    assert 0 < m.latency_p50_ms <= m.latency_p95_ms
    assert m.threads >= 1 and m.backend == "tensorflow"
    assert budget.violations(m) == []


def _m(params, p50):
    return budget.Measurement(
        params=params, latency_p50_ms=p50, latency_p95_ms=p50, threads=2, backend="tensorflow"
    )


def test_violations_say_which_limit_and_by_how_much():
    assert budget.violations(_m(999_999, 19.9)) == []
    (v,) = budget.violations(_m(1_234_567, 3.0))
    assert v == "parameters 1,234,567 exceed the limit 1,000,000 by 234,567 (23.5%)"
    (v,) = budget.violations(_m(10, 25.0))
    assert v == "latency p50 25.00 ms exceeds the limit 20 ms by 5.00 ms (25.0%)"
    assert len(budget.violations(_m(2_000_000, 30.0))) == 2
    custom = budget.Limits(max_params=100, max_latency_ms=1.0)
    assert len(budget.violations(_m(50, 0.5), custom)) == 0
    assert len(budget.violations(_m(100, 0.5), custom)) == 1  # the limit itself is over: "under"
