"""Posterior z-score against posterior contraction (Schad, Betancourt and Vasishth 2021)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._arrays import bayesflow_draws
from ..contraction import posterior_contraction, posterior_z_scores
from ._layout import panels


def z_score_contraction(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Any] | None = None,
) -> Figure:
    """One panel per variable, one dot per dataset: contraction (x; near 1: the data are
    informative) against z-score (y; |z| > 3 is rarely seen with a calibrated posterior).
    The ideal cloud sits right with |z| small; high contraction with large |z| is
    overconfidence."""
    d = bayesflow_draws(
        "plots.z_score_contraction", estimates, targets, variable_keys, variable_names,
        test_quantities,
    )  # fmt: skip
    args = (d.estimates, d.targets, list(d.names))
    c = posterior_contraction(*args).details["contraction"]
    z = posterior_z_scores(*args).details["z_scores"]
    fig, axes = panels(len(d.names), title="z-score vs. contraction")
    for i, (ax, name) in enumerate(zip(axes, d.names, strict=True)):
        ax.scatter(c[:, i], z[:, i], s=6, alpha=0.5, color="C0")
        ax.axhspan(-3, 3, color="grey", alpha=0.12)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlim(min(-0.05, np.nanmin(c[:, i]) - 0.05), 1.05)
        ax.set_title(name)
        ax.set_xlabel("posterior contraction")
        ax.set_ylabel("posterior z-score")
        ax.grid(alpha=0.3)
    return fig
