"""SBC: ECDF of fractional ranks with the simultaneous band (Säilynoja et al. 2022)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._arrays import bayesflow_draws
from ..ecdf import log_gamma
from ._layout import panels


def calibration_ecdf(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Any] | None = None,
    difference: bool = True,
    alpha: float = 0.05,
) -> Figure:
    """One panel per variable: the ECDF of the fractional SBC ranks (minus the uniform CDF
    when ``difference``) and the simultaneous ``1 - alpha`` band of uniform ranks. A curve
    leaving the band rejects calibration. In difference form, a curve above zero on the left
    and below on the right (ranks piled at both ends) shows overconfidence, the mirror image
    underconfidence, and a curve above (below) zero throughout a posterior that overestimates
    (underestimates)."""
    d = bayesflow_draws(
        "plots.calibration_ecdf", estimates, targets, variable_keys, variable_names,
        test_quantities,
    )  # fmt: skip
    lg = log_gamma(d.estimates, d.targets, list(d.names), alpha=alpha)
    frac, bands = lg.details["fractional"], lg.details["bands"]
    z = np.concatenate([[0.0], bands.z, [1.0]])
    lower = np.concatenate([[0.0], bands.lower, [1.0]])
    upper = np.concatenate([[0.0], bands.upper, [1.0]])
    base = z if difference else np.zeros_like(z)
    fig, axes = panels(len(lg.variable_names), title="Calibration: rank ECDF")
    for i, (ax, name) in enumerate(zip(axes, lg.variable_names, strict=True)):
        ecdf = np.mean(frac[None, :, i] <= z[:, None], axis=1)
        ax.fill_between(
            z,
            lower - base,
            upper - base,
            color="grey",
            alpha=0.25,
            step=None,
            label=f"{100 * (1 - alpha):.0f}% simultaneous band",
        )
        ax.plot(z, ecdf - base, color="C0", label="rank ECDF")
        ax.axhline(0.0 if difference else np.nan, color="black", lw=0.6)
        if not difference:
            ax.plot([0, 1], [0, 1], color="black", lw=0.6)
        ax.set_title(f"{name}  (log γ = {lg.values[i]:.2f})")
        ax.set_xlabel("fractional rank")
        ax.set_ylabel("ECDF difference" if difference else "ECDF")
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False, fontsize=8, loc="lower right")
    return fig
