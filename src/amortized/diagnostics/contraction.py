"""Posterior contraction and posterior z-scores (Schad, Betancourt and Vasishth 2021).

- contraction ``1 - Var_post / Var_prior`` per dataset (the prior variance estimated by the
  variance of the true values over the test datasets, which come from the prior); 1: the data
  pin the parameter down, 0: nothing learned. The metric is the median over datasets.
- z-score ``(E_post[theta] - theta*) / SD_post[theta]`` per dataset. For a calibrated posterior
  (any shape) ``E[z] = 0`` and ``E[z^2] = 1`` over datasets drawn from the prior.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._arrays import Metric, as_draws


def posterior_contraction(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
) -> Metric:
    """Median contraction per variable; ``details["contraction"] (num_datasets, dim)``.

    >>> rng = np.random.default_rng(0)
    >>> theta = rng.normal(size=(300, 1))
    >>> draws = theta[:, None] + 0.5 * rng.normal(size=(300, 200, 1))
    >>> round(float(posterior_contraction(draws, theta).values[0]), 1)   # 1 - 0.25
    0.8
    """
    d = as_draws("posterior_contraction", estimates, targets, variable_names)
    prior_var = d.targets.var(axis=0, ddof=1)
    post_var = d.estimates.var(axis=1, ddof=1)
    c = 1.0 - post_var / np.where(prior_var > 0, prior_var, np.nan)
    return Metric("contraction", np.median(c, axis=0), d.names, {"contraction": c})


def posterior_z_scores(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
) -> Metric:
    """Mean z-score per variable; ``details["z_scores"] (num_datasets, dim)`` and
    ``details["mean_square"]`` (1 when calibrated, above 1 when overconfident)."""
    d = as_draws("posterior_z_scores", estimates, targets, variable_names)
    sd = d.estimates.std(axis=1, ddof=1)
    z = (d.estimates.mean(axis=1) - d.targets) / np.where(sd > 0, sd, np.nan)
    return Metric(
        "mean_z_score",
        np.mean(z, axis=0),
        d.names,
        {"z_scores": z, "mean_square": np.mean(z**2, 0)},
    )
