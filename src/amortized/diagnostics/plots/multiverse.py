"""Multiverse figures: every universe's posterior interval, and which choice moves it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ._layout import panels


def multiverse_intervals(
    summaries: Mapping[str, np.ndarray],
    universes: Sequence[str],
    names: Sequence[str],
    label: str = "",
) -> Figure:
    """One panel per parameter: each universe's posterior mean (dot) and central interval
    (bar), one row per universe in the given order (the first choice varying slowest, so
    universes sharing its option are adjacent), with zero marked. ``summaries``: ``mean``,
    ``lo``, ``hi`` ``(num_universes, dim)`` for one dataset."""
    mean = np.asarray(summaries["mean"], np.float64)
    lo, hi = np.asarray(summaries["lo"]), np.asarray(summaries["hi"])
    if mean.shape != (len(universes), len(names)):
        raise ValueError(
            f"multiverse_intervals: summaries must be (num_universes={len(universes)}, "
            f"dim={len(names)}), got {mean.shape}"
        )
    fig, axes = panels(
        len(names),
        max_cols=3,
        title=f"Posterior in every universe ({label})" if label else "Posterior in every universe",
    )
    fig.set_size_inches(fig.get_size_inches()[0] * 1.4, 1.2 + 0.28 * len(universes))
    y = np.arange(len(universes))[::-1]
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        ax.errorbar(
            mean[:, j], y, xerr=[mean[:, j] - lo[:, j], hi[:, j] - mean[:, j]],
            fmt="o", ms=4, capsize=2,
        )  # fmt: skip
        ax.axvline(0.0, color="0.5", lw=0.8, ls=":")
        ax.set_yticks(y)
        ax.set_yticklabels(universes if j == 0 else [""] * len(universes), fontsize="small")
        ax.set_title(name)
    return fig


def choice_effects_plot(effects: Mapping[str, np.ndarray], names: Sequence[str]) -> Figure:
    """Per choice and parameter, the spread of the posterior mean over the choice's
    options in posterior sd (bars: the mean over datasets; whiskers: the smallest and
    largest dataset). ``effects``: choice -> ``(num_datasets, dim)``."""
    choices = list(effects)
    fig = Figure(figsize=(1.6 + 1.1 * len(choices) * max(1, len(names)) ** 0.5, 3.6))
    ax = fig.subplots()
    width = 0.8 / max(1, len(names))
    x = np.arange(len(choices))
    for j, name in enumerate(names):
        vals = np.stack([np.asarray(effects[c])[:, j] for c in choices])  # (choices, N)
        mid = vals.mean(axis=1)
        ax.bar(x + j * width, mid, width, label=name)
        ax.vlines(x + j * width, vals.min(axis=1), vals.max(axis=1), color="0.2", lw=1)
    ax.set_xticks(x + width * (len(names) - 1) / 2)
    ax.set_xticklabels(choices)
    ax.set_ylabel("spread of the posterior mean (posterior sd)")
    ax.legend(fontsize="small")
    fig.suptitle("Which choice moves the posterior")
    fig.set_layout_engine("constrained")
    return fig
