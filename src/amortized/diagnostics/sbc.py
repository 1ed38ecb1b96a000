"""Simulation-based calibration ranks (Talts et al. 2018).

For a calibrated posterior, the rank of the true value among the ``num_samples`` posterior
draws of its own dataset is uniform on ``{0, ..., num_samples}``. Fractional ranks map that to
``(0, 1)``: ``r = (#{draws < truth} + 0.5) / (num_samples + 1)``, the midpoint of the rank's
cell, so that uniform ranks give an ECDF within ``1 / (2 (num_samples + 1))`` of the diagonal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._arrays import Metric, as_draws


def sbc_ranks(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
) -> Metric:
    """Integer SBC ranks ``#{draws < truth}``: ``details["ranks"] (num_datasets, dim)``;
    ``values`` is the mean fractional rank per variable (0.5 when calibrated; below 0.5 when
    the posterior sits above the truth, i.e. overestimates).

    >>> rng = np.random.default_rng(0)
    >>> theta = rng.normal(size=(200, 1)); draws = rng.normal(size=(200, 99, 1))
    >>> bool(sbc_ranks(draws, theta).details["ranks"].max() <= 99)
    True
    """
    d = as_draws("sbc_ranks", estimates, targets, variable_names)
    ranks = np.sum(d.estimates < d.targets[:, None, :], axis=1)
    frac = fractional_ranks_from_counts(ranks, d.estimates.shape[1])
    return Metric("rank_mean", frac.mean(axis=0), d.names, {"ranks": ranks, "fractional": frac})


def fractional_ranks_from_counts(ranks: np.ndarray, num_samples: int) -> np.ndarray:
    return (np.asarray(ranks, np.float64) + 0.5) / (num_samples + 1)


def fractional_ranks(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Fractional ranks ``(num_datasets, dim)`` in ``(0, 1)``; uniform when calibrated."""
    return sbc_ranks(estimates, targets, variable_names).details["fractional"]
