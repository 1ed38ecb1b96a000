"""Tests of Accuracy with Random Points (TARP; Lemos et al. 2023), a joint calibration check.

Variables are scaled to ``[0, 1]`` by the range of the true values. For dataset ``j`` a
reference point ``r_j`` is drawn uniformly in the unit box; ``f_j`` is the fraction of
posterior draws closer to ``r_j`` than the true value is. The expected coverage probability
``ECP(a) = mean_j 1[f_j < a]`` equals ``a`` for every ``a`` exactly when the posterior is
calibrated (for random references that do not depend on the truth). Unlike the per-variable
metrics, TARP looks at all variables together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._arrays import Metric, as_draws


def tarp(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
    num_levels: int = 100,
    seed: int = 0,
) -> Metric:
    """TARP curve and scores.

    ``values``: ``[max_a |ECP(a) - a|]`` under the name ``"tarp"`` (variable ``"joint"``);
    ``details``: ``levels``, ``ecp``, ``atc`` (signed area ``mean_a (ECP(a) - a)``; negative
    when overconfident) and the per-dataset fractions ``f``.
    """
    d = as_draws("tarp", estimates, targets, variable_names)
    lo, hi = d.targets.min(axis=0), d.targets.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    est = (d.estimates - lo) / span
    tgt = (d.targets - lo) / span
    ref = np.random.default_rng(seed).uniform(size=tgt.shape)
    dist_draws = np.linalg.norm(est - ref[:, None, :], axis=-1)  # (n, s)
    dist_true = np.linalg.norm(tgt - ref, axis=-1)  # (n,)
    f = np.mean(dist_draws < dist_true[:, None], axis=1)
    levels = np.linspace(0, 1, num_levels + 1)
    ecp = np.mean(f[None, :] < levels[:, None], axis=1)
    dev = ecp - levels
    return Metric(
        "tarp",
        np.array([np.max(np.abs(dev))]),
        ("joint",),
        {"levels": levels, "ecp": ecp, "atc": float(np.mean(dev)), "f": f},
    )
