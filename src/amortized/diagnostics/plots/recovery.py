"""Recovery: posterior medians against true values, with central credible intervals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._arrays import bayesflow_draws
from ..recovery import recovery_correlation
from ._layout import panels


def recovery(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Any] | None = None,
    interval: float = 0.95,
    max_points: int = 500,
) -> Figure:
    """One panel per variable: median (dot) and central ``interval`` (bar) of each dataset's
    posterior against the true value; the diagonal is perfect recovery. At most
    ``max_points`` datasets are drawn (the first ones) to keep the figure legible."""
    d = bayesflow_draws(
        "plots.recovery", estimates, targets, variable_keys, variable_names, test_quantities
    )
    corr = recovery_correlation(d.estimates, d.targets, list(d.names))
    m = min(d.num_datasets, max_points)
    est, tgt = d.estimates[:m], d.targets[:m]
    med = np.median(est, axis=1)
    lo = np.quantile(est, (1 - interval) / 2, axis=1)
    hi = np.quantile(est, (1 + interval) / 2, axis=1)
    fig, axes = panels(len(d.names), title="Recovery: posterior median vs. truth")
    for i, (ax, name) in enumerate(zip(axes, d.names, strict=True)):
        ax.errorbar(
            tgt[:, i],
            med[:, i],
            yerr=[med[:, i] - lo[:, i], hi[:, i] - med[:, i]],
            fmt="o",
            ms=2.5,
            alpha=0.5,
            elinewidth=0.6,
            color="C0",
        )
        span = [min(tgt[:, i].min(), lo[:, i].min()), max(tgt[:, i].max(), hi[:, i].max())]
        ax.plot(span, span, color="black", lw=1, ls="--")
        ax.set_title(name)
        ax.set_xlabel("true value")
        ax.set_ylabel("posterior median")
        ax.text(
            0.04,
            0.96,
            f"r = {corr.values[i]:.3f}\n$R^2$ = {corr.details['r2'][i]:.3f}",
            transform=ax.transAxes,
            va="top",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
    return fig
