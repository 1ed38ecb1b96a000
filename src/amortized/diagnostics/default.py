"""The default table of diagnostics: one row per metric, one column per variable."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._arrays import Draws, as_draws
from .contraction import posterior_contraction, posterior_z_scores
from .coverage import calibration_error, expected_coverage
from .ecdf import log_gamma
from .multimodality import multimodal_fraction
from .recovery import nrmse, recovery_correlation

#: Rows of the default table, in order, with what each measures.
DEFAULT_METRICS = {
    "nrmse": "normalized RMSE of draws against the truth (0 best)",
    "recovery_correlation": "correlation of posterior medians with the truth (1 best)",
    "log_gamma": "SBC rank ECDF test; >= 0: inside the simultaneous 95% band",
    "calibration_error": "median |coverage - nominal| of central intervals (0 best)",
    "coverage_gap": "mean coverage - nominal (< 0 overconfident, > 0 underconfident)",
    "rank_mean": "mean fractional SBC rank (0.5 unbiased; < 0.5 overestimates)",
    "contraction": "median 1 - posterior variance / prior variance",
    "mean_z_score": "mean posterior z-score (0 calibrated)",
    "z_score_variance": "variance of posterior z-scores (1 calibrated; > 1 overconfident)",
    "multimodal_fraction": "fraction of datasets whose posterior has separated modes",
}


def _columns(d: Draws) -> dict[str, np.ndarray]:
    args = (d.estimates, d.targets, list(d.names))
    lg = log_gamma(*args)
    frac = lg.details["fractional"]
    z = posterior_z_scores(*args)
    return {
        "nrmse": nrmse(*args).values,
        "recovery_correlation": recovery_correlation(*args).values,
        "log_gamma": lg.values,
        "calibration_error": calibration_error(*args).values,
        "coverage_gap": expected_coverage(*args).values,
        "rank_mean": frac.mean(axis=0),
        "contraction": posterior_contraction(*args).values,
        "mean_z_score": z.values,
        "z_score_variance": np.var(z.details["z_scores"], axis=0, ddof=1),
        "multimodal_fraction": multimodal_fraction(*args).values,
    }


def default_diagnostics(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Callable] | None = None,
):
    """Every metric of :data:`DEFAULT_METRICS` for every variable, as a pandas DataFrame
    (index: metric names; columns: variable names). ``estimates (num_datasets, num_samples,
    dim)`` or ``{name: (num_datasets, num_samples, *shape)}``; ``targets`` likewise without the
    sample axis. The number of datasets is stored in ``table.attrs["num_datasets"]``.
    """
    import pandas as pd

    d = as_draws("default_diagnostics", estimates, targets, variable_names, test_quantities)
    table = pd.DataFrame(_columns(d), index=list(d.names)).T
    table.attrs["num_datasets"] = d.num_datasets
    table.attrs["num_samples"] = d.estimates.shape[1]
    return table
