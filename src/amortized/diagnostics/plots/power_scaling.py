"""Power-scaling sensitivity figures: posteriors across prior powers, and each parameter's
prior against likelihood sensitivity with the rating regions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..ratings import POWER_SENSITIVITY_THRESHOLD
from ._layout import panels


def power_scaling_intervals(
    gamma: np.ndarray,
    draws: np.ndarray,
    names: Sequence[str],
    max_datasets: int = 5,
) -> Figure:
    """One panel per parameter: for each dataset (the first ``max_datasets``) the posterior
    median (line) and central 50% and 90% intervals (bands) against the prior power
    ``gamma`` (log axis). ``draws``: ``(num_datasets, len(gamma), num_samples, dim)``.
    Flat lines: the posterior does not depend on the prior's strength."""
    g = np.asarray(gamma, np.float64)
    x = np.asarray(draws, np.float64)
    if x.ndim != 4 or x.shape[1] != len(g) or x.shape[3] != len(names):
        raise ValueError(
            f"power_scaling_intervals: draws must be (num_datasets, {len(g)}, num_samples, "
            f"{len(names)}), got {x.shape}"
        )
    order = np.argsort(g)
    g, x = g[order], x[:, order][: max(1, max_datasets)]
    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95], axis=2)  # (5, N, G, D)
    fig, axes = panels(len(names), title="Posterior against the power of the prior")
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        for i in range(x.shape[0]):
            line = ax.plot(g, q[2, i, :, j], label=f"dataset {i}")[0]
            c = line.get_color()
            ax.fill_between(g, q[0, i, :, j], q[4, i, :, j], color=c, alpha=0.12, lw=0)
            ax.fill_between(g, q[1, i, :, j], q[3, i, :, j], color=c, alpha=0.25, lw=0)
        ax.set_xscale("log")
        ax.axvline(1.0, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel("prior power gamma")
        ax.set_title(name)
    axes[0].legend(fontsize="small")
    return fig


def power_sensitivity_map(
    prior: np.ndarray,
    likelihood: np.ndarray | None,
    names: Sequence[str],
    threshold: float = POWER_SENSITIVITY_THRESHOLD,
) -> Figure:
    """Each parameter of each dataset as a point: prior sensitivity (x) against likelihood
    sensitivity (y), ``(num_datasets, dim)`` each, with the threshold lines that divide the
    ratings (upper right: prior-data conflict; lower right: prior-dominated; upper left:
    likelihood-dominated; lower left: insensitive). Without a likelihood measure the points
    lie on the x axis."""
    p = np.asarray(prior, np.float64)
    lik = np.zeros_like(p) if likelihood is None else np.asarray(likelihood, np.float64)
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.subplots()
    for j, name in enumerate(names):
        ax.scatter(p[:, j], lik[:, j], label=name, s=22)
    top = max(3 * threshold, float(np.nanmax(np.concatenate([p.ravel(), lik.ravel()]))) * 1.1)
    ax.axvline(threshold, color="0.4", lw=0.8, ls="--")
    ax.axhline(threshold, color="0.4", lw=0.8, ls="--")
    for (x, y), text in {
        (0.98, 0.98): "prior-data conflict",
        (0.98, 0.02): "prior-dominated",
        (0.02, 0.98): "likelihood-dominated",
        (0.02, 0.02): "insensitive",
    }.items():
        ax.text(
            x, y, text, transform=ax.transAxes, fontsize="small", color="0.35",
            ha="right" if x > 0.5 else "left", va="top" if y > 0.5 else "bottom",
        )  # fmt: skip
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("prior sensitivity (per unit log gamma)")
    ax.set_ylabel("likelihood sensitivity" if likelihood is not None else "(no likelihood)")
    ax.legend(fontsize="small", loc="center right")
    fig.suptitle("Power-scaling sensitivity")
    fig.set_layout_engine("constrained")
    return fig
