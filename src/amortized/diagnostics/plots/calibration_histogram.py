"""SBC rank histogram with a binomial band (Talts et al. 2018)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import binom

from .._arrays import bayesflow_draws
from ..sbc import sbc_ranks
from ._layout import panels


def calibration_histogram(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Any] | None = None,
    num_bins: int = 10,
    binomial_interval: float = 0.99,
) -> Figure:
    """One panel per variable: the histogram of the fractional SBC ranks of the true values
    among the posterior draws in ``num_bins`` bins. For a calibrated posterior each bin's
    count is Binomial(num_datasets, 1 / num_bins); the grey band is that distribution's
    central ``binomial_interval``. A U shape shows overconfidence, a hump underconfidence, a
    slope bias. The ECDF plot (:func:`calibration_ecdf`) is the sharper test; the histogram
    is easier to read for large departures.

    >>> rng = np.random.default_rng(0)
    >>> fig = calibration_histogram(rng.normal(size=(200, 100, 1)), rng.normal(size=(200, 1)))
    >>> len(fig.axes)
    1
    """
    d = bayesflow_draws(
        "plots.calibration_histogram", estimates, targets, variable_keys, variable_names,
        test_quantities,
    )  # fmt: skip
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(
            f"plots.calibration_histogram: num_bins must be an int >= 2, got {num_bins!r}"
        )
    if not 0 < binomial_interval < 1:
        raise ValueError(
            f"plots.calibration_histogram: binomial_interval must lie in (0, 1), got "
            f"{binomial_interval}"
        )
    frac = sbc_ranks(d.estimates, d.targets, list(d.names)).details["fractional"]
    n = frac.shape[0]
    lo, hi = binom.interval(binomial_interval, n, 1.0 / num_bins)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    fig, axes = panels(len(d.names), title="Calibration: rank histogram")
    for i, (ax, name) in enumerate(zip(axes, d.names, strict=True)):
        ax.axhspan(lo, hi, color="grey", alpha=0.25, label=f"{binomial_interval:.0%} band")
        ax.axhline(n / num_bins, color="grey", lw=1)
        ax.hist(frac[:, i], bins=edges, color="C0", alpha=0.8, edgecolor="white")
        ax.set_title(name)
        ax.set_xlabel("fractional rank")
        ax.set_ylabel("datasets")
    axes[0].legend(frameon=False, fontsize=8)
    return fig
