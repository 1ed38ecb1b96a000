"""Parameter recovery: how close the posterior lands to the true values.

- ``nrmse``: for each draw index ``s``, the root mean squared error over datasets
  ``sqrt(mean_j (theta_js - theta*_j)^2)``, divided by the range of the true values, and the
  median over ``s``. 0 is perfect; it includes posterior spread, so a weakly identified
  parameter cannot score near 0 even when its posterior is exact.
- ``recovery_correlation``: Pearson correlation between posterior medians and true values;
  ``r2``: ``1 - SS_res / SS_tot`` of the medians as predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._arrays import Metric, as_draws


def nrmse(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
    normalize: bool = True,
) -> Metric:
    """Normalized root mean squared error per variable (see the module docstring).

    >>> t = np.linspace(0, 1, 11)[:, None]
    >>> float(nrmse(np.repeat(t[:, None], 5, axis=1), t).values[0])
    0.0
    """
    d = as_draws("nrmse", estimates, targets, variable_names)
    rmse = np.sqrt(np.mean((d.estimates - d.targets[:, None, :]) ** 2, axis=0))  # (s, dim)
    if normalize:
        span = d.targets.max(axis=0) - d.targets.min(axis=0)
        rmse = rmse / np.where(span > 0, span, 1.0)
    return Metric("nrmse" if normalize else "rmse", np.median(rmse, axis=0), d.names)


def recovery_correlation(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
) -> Metric:
    """Correlation of posterior medians with true values; ``details["r2"]`` and the
    ``medians (num_datasets, dim)``."""
    d = as_draws("recovery_correlation", estimates, targets, variable_names)
    med = np.median(d.estimates, axis=1)
    mc, tc = med - med.mean(axis=0), d.targets - d.targets.mean(axis=0)
    denom = np.sqrt(np.sum(mc**2, axis=0) * np.sum(tc**2, axis=0))
    corr = np.sum(mc * tc, axis=0) / np.where(denom > 0, denom, np.nan)
    ss_tot = np.sum(tc**2, axis=0)
    r2 = 1.0 - np.sum((med - d.targets) ** 2, axis=0) / np.where(ss_tot > 0, ss_tot, np.nan)
    return Metric("recovery_correlation", corr, d.names, {"r2": r2, "medians": med})
