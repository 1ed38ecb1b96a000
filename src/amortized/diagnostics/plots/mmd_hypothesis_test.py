"""The null distribution of an MMD misspecification test, with the observed value."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def mmd_hypothesis_test(
    mmd_null: Sequence[float] | np.ndarray,
    mmd_observed: float | Sequence[float] | np.ndarray | None = None,
    alpha_level: float = 0.05,
) -> Figure:
    """Histogram of ``mmd_null`` (distances of simulated data from the reference, e.g. the
    null of :func:`amortized.diagnostics.metrics.bootstrap_comparison`), its ``1 -
    alpha_level`` quantile (the critical value, dashed) and ``mmd_observed`` (red). An
    observed distance right of the critical value rejects "the observations come from the
    simulator" at level ``alpha_level``. Several observed values (one per dataset) show as
    ticks below the histogram, red where they reject, with the count in the legend.

    >>> fig = mmd_hypothesis_test(np.random.default_rng(0).gamma(2, 0.01, 200), 0.1)
    >>> fig.axes[0].get_xlabel()
    'MMD'
    """
    null = np.asarray(mmd_null, np.float64).ravel()
    if null.size < 2 or not np.all(np.isfinite(null)):
        raise ValueError(
            f"plots.mmd_hypothesis_test: mmd_null must hold at least 2 finite values, got "
            f"{null.size} ({int(np.sum(~np.isfinite(null)))} non-finite)"
        )
    if not 0 < alpha_level < 1:
        raise ValueError(
            f"plots.mmd_hypothesis_test: alpha_level must lie in (0, 1), got {alpha_level}"
        )
    critical = float(np.quantile(null, 1.0 - alpha_level))
    fig = Figure(figsize=(6.0, 3.6))
    ax = fig.add_subplot()
    ax.hist(null, bins=30, color="C0", alpha=0.6, density=True, label="null distribution")
    ax.axvline(critical, color="black", ls="--", label=f"critical value (alpha {alpha_level:g})")
    obs = None if mmd_observed is None else np.asarray(mmd_observed, np.float64).ravel()
    if obs is not None and obs.size == 1:
        p = float(np.mean(null >= obs[0]))
        ax.axvline(float(obs[0]), color="red", lw=2, label=f"observed (p = {p:.3f})")
    elif obs is not None and obs.size:
        out = obs > critical
        low = ax.get_ylim()[1] * -0.04
        ax.plot(obs[~out], np.full((~out).sum(), low), "|", color="0.2", ms=12,
                label=f"observed ({(~out).sum()} inside)")  # fmt: skip
        ax.plot(obs[out], np.full(out.sum(), low), "|", color="red", ms=12,
                label=f"observed ({out.sum()} rejected)")  # fmt: skip
    ax.set_xlabel("MMD")
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    fig.set_layout_engine("constrained")
    return fig
