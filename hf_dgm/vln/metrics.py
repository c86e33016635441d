"""R2R navigation metrics, as the standard evaluators compute them (Matterport3DSimulator `tasks/R2R/eval.py`,
R2R-EnvDrop, VLN-DUET), plus nDTW/SDTW (Ilharco et al. 2019).

Per episode, with `d` the shortest-path (Dijkstra) distance on the scan's graph, trajectory viewpoints
`p_0..p_T` (`p_0` must be the episode's start) and reference path `r_0..r_M` (goal `r_M`):

- TL (trajectory length) = sum of `d(p_t, p_{t+1})`;
- NE (navigation error) = `d(p_T, r_M)`; success = NE < 3.0 (strict);
- oracle success = min over all visited viewpoints (start included) of `d(p_t, r_M)` < 3.0;
- SPL = success · l / max(TL, l), l = `d(r_0, r_M)`;
- nDTW = exp(−DTW(P, R) / (3.0 · |R|)) with `d` as the DTW cost, after collapsing consecutive repeated viewpoints of
  the trajectory (the originals record one entry per camera turn); SDTW = success · nDTW.

Rates are fractions in [0, 1]. `summarize` averages the per-episode values. Which instructions of a split are
averaged (the official evaluator: the first three of each path) is decided in `hf_dgm.vln.evaluation`.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np


ERROR_MARGIN = 3.0
SUMMARY_KEYS = (
    "trajectory_length",
    "nav_error",
    "oracle_success_rate",
    "success_rate",
    "spl",
    "ndtw",
    "sdtw",
    "num_episodes",
)


def collapse_repeats(viewpoints: list[str]) -> list[str]:
    """Drop consecutive duplicates: `[a, a, b, b, a] -> [a, b, a]`."""
    out = []
    for vp in viewpoints:
        if not out or out[-1] != vp:
            out.append(vp)
    return out


def dtw(prediction: list[str], reference: list[str], distance: Callable[[str, str], float]) -> float:
    """Dynamic time warping between two viewpoint sequences with `distance` as the cost."""
    n, m = len(prediction), len(reference)
    table = np.full((n + 1, m + 1), np.inf)
    table[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = distance(prediction[i - 1], reference[j - 1])
            table[i, j] = cost + min(table[i - 1, j], table[i, j - 1], table[i - 1, j - 1])
    return float(table[n, m])


def ndtw(prediction: list[str], reference: list[str], distance, threshold: float = ERROR_MARGIN) -> float:
    return math.exp(-dtw(collapse_repeats(prediction), reference, distance) / (threshold * len(reference)))


def score_episode(
    trajectory: list[str],
    reference: list[str],
    distance: Callable[[str, str], float],
    is_edge: Callable[[str, str], bool] | None = None,
    has_viewpoint: Callable[[str], bool] | None = None,
    name: str = "episode",
    error_margin: float = ERROR_MARGIN,
) -> dict:
    """Metrics of one trajectory (viewpoint ids) against its reference path. Raises `ValueError` naming `name` for an
    empty trajectory, an unknown viewpoint, a wrong start, or a move along no edge (when `is_edge` is given)."""
    if not trajectory:
        raise ValueError(f"{name}: empty trajectory")
    if not reference:
        raise ValueError(f"{name}: empty reference path")
    if has_viewpoint is not None:
        for vp in trajectory:
            if not has_viewpoint(vp):
                raise ValueError(f"{name}: unknown viewpoint {vp!r}")
    if trajectory[0] != reference[0]:
        raise ValueError(f"{name}: the trajectory starts at {trajectory[0]!r}, not at the episode's start {reference[0]!r}")
    if is_edge is not None:
        for a, b in zip(trajectory, trajectory[1:]):
            if a != b and not is_edge(a, b):
                raise ValueError(f"{name}: move {a!r} -> {b!r} is along no edge of the navigation graph")
    goal = reference[-1]
    length = sum(distance(a, b) for a, b in zip(trajectory, trajectory[1:]))
    nav_error = distance(trajectory[-1], goal)
    oracle_error = min(distance(vp, goal) for vp in trajectory)
    success = float(nav_error < error_margin)
    shortest = distance(reference[0], goal)
    spl = success * shortest / max(length, shortest) if max(length, shortest) > 0 else success
    n = ndtw(trajectory, reference, distance, error_margin)
    return {
        "trajectory_length": length,
        "nav_error": nav_error,
        "oracle_error": oracle_error,
        "success": success,
        "oracle_success": float(oracle_error < error_margin),
        "spl": spl,
        "ndtw": n,
        "sdtw": success * n,
        "steps": len(collapse_repeats(trajectory)) - 1,
    }


def summarize(scores: list[dict]) -> dict:
    """The averaged metrics (`SUMMARY_KEYS`) of per-episode scores."""
    if not scores:
        raise ValueError("no episodes to summarize")

    def mean(key):
        return float(np.mean([s[key] for s in scores]))

    return {
        "trajectory_length": mean("trajectory_length"),
        "nav_error": mean("nav_error"),
        "oracle_success_rate": mean("oracle_success"),
        "success_rate": mean("success"),
        "spl": mean("spl"),
        "ndtw": mean("ndtw"),
        "sdtw": mean("sdtw"),
        "num_episodes": len(scores),
    }
