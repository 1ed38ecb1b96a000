"""Diagnostics of point estimators (``ScoringRuleApproximator.estimate``).

- ``quantile_calibration``: for estimated posterior quantiles at levels ``q``, the share of
  held-out simulations whose true value lies at or below each estimated quantile. For the
  true posterior quantile this share is exactly ``q`` in expectation over the prior
  predictive (the same argument as SBC), so a share outside the binomial band
  ``q +- z sqrt(q (1 - q) / n)`` says the quantiles are miscalibrated there (too narrow
  when the outer levels' shares fall outside, biased when all shift one way).
- ``point_recovery``: correlation and normalized RMSE of point estimates (means, medians)
  against the true values.

Estimates use the layout of :mod:`amortized.diagnostics._arrays` with the levels in place of
the draws: ``(num_datasets, num_levels, dim)`` or ``{name: (num_datasets, num_levels,
*shape)}`` for quantiles, ``(num_datasets, dim)`` or ``{name: (num_datasets, *shape)}`` for
point estimates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from ._arrays import Metric, as_draws
from .recovery import nrmse, recovery_correlation


def quantile_calibration(
    quantiles: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    q: Sequence[float],
    variable_names: Sequence[str] | None = None,
    level: float = 0.95,
) -> Metric:
    """The largest absolute gap between observed coverage and nominal level, per variable;
    ``details``: ``"coverage"`` ``(num_levels, dim)`` (share of targets at or below each
    quantile), ``"levels"``, ``"band"`` (the half-width of the binomial ``level`` band per
    level) and ``"outside"`` ``(num_levels, dim)`` (coverage outside its band).

    >>> rng = np.random.default_rng(0)
    >>> t = rng.normal(size=(4000, 1))
    >>> qs = np.broadcast_to(np.array([-1.2816, 0.0, 1.2816])[None, :, None], (4000, 3, 1))
    >>> m = quantile_calibration(qs, t, q=[0.1, 0.5, 0.9])
    >>> bool(m.values[0] < 0.03), bool(m.details["outside"].any())
    (True, False)
    """
    levels = np.asarray(q, np.float64)
    d = as_draws("quantile_calibration", quantiles, targets, variable_names)
    if d.estimates.shape[1] != len(levels):
        raise ValueError(
            f"quantile_calibration: {len(levels)} levels in q but the quantiles have "
            f"{d.estimates.shape[1]} per dataset (axis 1)"
        )
    n = d.num_datasets
    coverage = np.mean(d.targets[:, None, :] <= d.estimates, axis=0)  # (levels, dim)
    z = stats.norm.ppf(0.5 + level / 2)
    band = z * np.sqrt(levels * (1 - levels) / n)
    gap = np.abs(coverage - levels[:, None])
    return Metric(
        "quantile_calibration",
        gap.max(axis=0),
        d.names,
        {"coverage": coverage, "levels": levels, "band": band, "outside": gap > band[:, None]},
    )


def point_recovery(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
) -> Metric:
    """Correlation of point estimates with the true values per variable; ``details``:
    ``"r2"`` and ``"nrmse"`` (RMSE over the range of the true values).

    >>> t = np.linspace(0, 1, 11)[:, None]
    >>> float(point_recovery(t, t).values[0])
    1.0
    """
    # each estimate as two identical "draws": the draw-based metrics (which need two per
    # dataset) then see the estimate itself as the median and as every draw
    if isinstance(estimates, Mapping):
        as_draw = {k: np.repeat(np.asarray(v)[:, None], 2, axis=1) for k, v in estimates.items()}
    else:
        as_draw = np.repeat(np.asarray(estimates)[:, None], 2, axis=1)
    corr = recovery_correlation(as_draw, targets, variable_names)
    err = nrmse(as_draw, targets, variable_names)
    return Metric(
        "point_recovery",
        corr.values,
        corr.variable_names,
        {"r2": corr.details["r2"], "nrmse": err.values},
    )


def point_diagnostics(
    estimates: Mapping[str, Mapping[str, Mapping[str, Any]]],
    targets: Mapping[str, Any],
    levels: Mapping[str, Sequence[float]],
):
    """The diagnostics of a point estimator's :meth:`~amortized.ScoringRuleApproximator.
    estimate` on held-out simulations, as a pandas DataFrame (index: one row per rule and
    metric; columns: variable names): for each single-valued statistic (a mean, median,
    normal's mean, mixture's mean) ``"<rule>: point_recovery"`` and ``"<rule>: nrmse"``; for
    each quantile rule ``"<rule>: quantile_calibration"`` (the largest coverage gap) and one
    row per level ``"<rule>: coverage at q"``. ``levels``: the quantile rules' levels by
    rule name; ``targets`` ``{variable: (num_datasets, *shape)}``.
    """
    import pandas as pd

    rows: dict[str, Metric] = {}
    first = next(iter(estimates.values()))
    for rule in first:
        per_var = {v: estimates[v][rule] for v in targets}
        if rule in levels:
            q = [float(x) for x in levels[rule]]
            m = quantile_calibration({v: s["value"] for v, s in per_var.items()}, targets, q)
            rows[f"{rule}: quantile_calibration"] = m
            for i, level in enumerate(q):
                rows[f"{rule}: coverage at {level:g}"] = Metric(
                    "coverage", m.details["coverage"][i], m.variable_names
                )
            continue
        point = {v: _point_of(s) for v, s in per_var.items()}
        rec = point_recovery(point, targets)
        rows[f"{rule}: point_recovery"] = rec
        rows[f"{rule}: nrmse"] = Metric("nrmse", rec.details["nrmse"], rec.variable_names)
    names = next(iter(rows.values())).variable_names
    table = pd.DataFrame({k: m.values for k, m in rows.items()}, index=list(names)).T
    table.attrs["num_datasets"] = int(len(next(iter(targets.values()))))
    return table


def _point_of(stats_: Mapping[str, Any]) -> np.ndarray:
    """The single-valued statistic of one rule's estimates ``(num_datasets, *shape)``: its
    ``"value"``, a normal's ``"mean"``, or a mixture's mean ``sum_k w_k mean_k``."""
    if "weights" in stats_:
        w = np.asarray(stats_["weights"])
        mean = np.asarray(stats_["mean"])
        return np.einsum("nk,nk...->n...", w, mean)
    return np.asarray(stats_["value"] if "value" in stats_ else stats_["mean"])
