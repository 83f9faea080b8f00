"""The statistics behind the plots, numpy only: omega squared of a one-way analysis of
variance (the importances) and the Pareto front (accuracy against a cost)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _groups(values: list[Any], bins: int) -> np.ndarray:
    """A group label per value: numbers by quantile bin (by value when few distinct), anything
    else by value; None (not sampled) its own group."""
    present = [v for v in values if v is not None]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
    if numeric and len(set(present)) > bins:
        edges = np.quantile(np.array(present, dtype=float), np.linspace(0, 1, bins + 1)[1:-1])
        key = [None if v is None else int(np.searchsorted(edges, v, side="right")) for v in values]
    else:
        key = [None if v is None else repr(v) for v in values]
    labels = {k: i for i, k in enumerate(dict.fromkeys(key))}
    return np.array([labels[k] for k in key])


def omega_squared(y: np.ndarray, groups: np.ndarray) -> float:
    """Omega squared of ``y`` grouped by ``groups``, clipped to [0, 1]; 0 with one group or
    fewer observations than groups plus one."""
    labels, mean = np.unique(groups), y.mean()
    n, k = len(y), len(labels)
    total = float(((y - mean) ** 2).sum())
    if k < 2 or n <= k or total == 0.0:
        return 0.0
    between = sum((groups == g).sum() * (y[groups == g].mean() - mean) ** 2 for g in labels)
    within_mean = (total - between) / (n - k)
    return float(np.clip((between - (k - 1) * within_mean) / (total + within_mean), 0.0, 1.0))


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: accuracy as high, cost as low, one strictly."""
    front = []
    for i, (acc, cost) in enumerate(points):
        dominated = any(
            a >= acc and c <= cost and (a > acc or c < cost)
            for j, (a, c) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][1])
