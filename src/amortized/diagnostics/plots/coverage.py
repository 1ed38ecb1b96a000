"""Expected coverage of central intervals with a Beta-binomial ribbon."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._arrays import bayesflow_draws
from ..coverage import expected_coverage
from ._layout import panels


def coverage(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Any] | None = None,
    difference: bool = False,
    ribbon: float = 0.95,
) -> Figure:
    """One panel per variable: empirical coverage of central credible intervals against the
    nominal level, with a ``ribbon`` interval for the true coverage. Under the diagonal:
    overconfident; above: underconfident."""
    d = bayesflow_draws(
        "plots.coverage", estimates, targets, variable_keys, variable_names, test_quantities
    )
    cov = expected_coverage(d.estimates, d.targets, list(d.names), ribbon=ribbon)
    lv, c = cov.details["levels"], cov.details["coverage"]
    lo, hi = cov.details["lower"], cov.details["upper"]
    base = lv if difference else np.zeros_like(lv)
    fig, axes = panels(len(cov.variable_names), title="Coverage of central intervals")
    for i, (ax, name) in enumerate(zip(axes, cov.variable_names, strict=True)):
        ax.fill_between(
            lv,
            lo[:, i] - base,
            hi[:, i] - base,
            color="C0",
            alpha=0.2,
            label=f"{100 * ribbon:.0f}% interval",
        )
        ax.plot(lv, c[:, i] - base, color="C0", label="empirical")
        if difference:
            ax.axhline(0.0, color="black", lw=0.8, ls="--")
        else:
            ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls="--", label="nominal")
        ax.set_title(name)
        ax.set_xlabel("nominal level")
        ax.set_ylabel("coverage - nominal" if difference else "empirical coverage")
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False, fontsize=8, loc="upper left")
    return fig
