"""Coverage of central posterior intervals.

For a level ``q``, the central interval of dataset ``j`` runs from the ``(1 - q) / 2`` to the
``(1 + q) / 2`` quantile of its draws; the empirical coverage is the fraction of datasets whose
true value falls inside. A calibrated posterior covers at the nominal rate: coverage(q) = q.
Below the diagonal the posterior is overconfident, above it underconfident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from ._arrays import Draws, Metric, as_draws


def _covered(d: Draws, levels: np.ndarray) -> np.ndarray:
    """``(num_levels, num_datasets, dim)`` booleans: truth inside the central interval."""
    lo = np.quantile(d.estimates, (1 - levels) / 2, axis=1)  # (L, n, dim)
    hi = np.quantile(d.estimates, (1 + levels) / 2, axis=1)
    t = d.targets[None]
    return (t >= lo) & (t <= hi)


def expected_coverage(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
    levels: Sequence[float] | np.ndarray | None = None,
    ribbon: float = 0.95,
) -> Metric:
    """Empirical coverage of central intervals per level and variable.

    ``values`` is the signed mean gap (empirical minus nominal) over the levels per variable
    (negative: overconfident). ``details``: ``levels (L,)``, ``coverage (L, dim)`` and the
    ``lower``/``upper`` ``(L, dim)`` of a central ``ribbon`` credible interval for the true
    coverage, from the Beta(k + 1, n - k + 1) posterior of a binomial proportion with ``k`` of
    ``n`` datasets covered (uniform prior). Default levels: ``0.01, 0.02, ..., 0.99``.
    """
    d = as_draws("expected_coverage", estimates, targets, variable_names)
    levels = np.linspace(0.01, 0.99, 99) if levels is None else np.asarray(levels, np.float64)
    if levels.ndim != 1 or np.any((levels <= 0) | (levels >= 1)):
        raise ValueError(f"expected_coverage: levels must be a 1-D array in (0, 1), got {levels}")
    k = _covered(d, levels).sum(axis=1)  # (L, dim)
    n = d.num_datasets
    cov = k / n
    tail = (1 - ribbon) / 2
    lower = stats.beta.ppf(tail, k + 1, n - k + 1)
    upper = stats.beta.ppf(1 - tail, k + 1, n - k + 1)
    gap = np.mean(cov - levels[:, None], axis=0)
    return Metric(
        "coverage_gap",
        gap,
        d.names,
        {"levels": levels, "coverage": cov, "lower": lower, "upper": upper},
    )


def calibration_error(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
    resolution: int = 20,
    min_level: float = 0.005,
    max_level: float = 0.995,
) -> Metric:
    """Median over ``resolution`` levels in ``[min_level, max_level]`` of
    ``|empirical coverage - level|`` of the central intervals, per variable. 0 is perfect;
    the noise floor with ``n`` datasets is about ``0.5 / sqrt(n)``.

    >>> rng = np.random.default_rng(1)
    >>> theta = rng.normal(size=(500, 1))
    >>> draws = rng.normal(size=(500, 400, 1))      # the prior is the posterior here
    >>> noise_floor = 0.5 / np.sqrt(500)
    >>> bool(calibration_error(draws, theta).values[0] < 2 * noise_floor)
    True
    """
    d = as_draws("calibration_error", estimates, targets, variable_names)
    levels = np.linspace(min_level, max_level, resolution)
    cov = _covered(d, levels).mean(axis=1)
    err = np.abs(cov - levels[:, None])
    return Metric(
        "calibration_error", np.median(err, axis=0), d.names, {"levels": levels, "coverage": cov}
    )
