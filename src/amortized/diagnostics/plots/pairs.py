"""Pair plots (corner plots) of posterior draws or prior samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._arrays import as_draws, bayesflow_draws, select_keys
from ._layout import PANEL


def _flatten_one(where: str, samples, names):
    """``(num_samples, dim)`` array or ``{name: (num_samples, *shape)}`` -> array, names."""
    if isinstance(samples, Mapping):
        wrapped = {k: np.asarray(v)[None] for k, v in samples.items()}
        d = as_draws(where, wrapped, None, names, require_targets=False)
        return d.estimates[0], d.names
    a = np.asarray(samples, np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{where}: samples must have shape (num_samples, dim), got {a.shape}")
    d = as_draws(where, a[None], None, names, require_targets=False)
    return d.estimates[0], d.names


def _corner(x: np.ndarray, names, title, color, label, truth=None, other=None, bins=40):
    dim = x.shape[1]
    fig = Figure(figsize=(min(PANEL * dim, 14) + 0.3, min(PANEL * dim, 14) + 0.5))
    axes = np.asarray(fig.subplots(dim, dim, squeeze=False))
    for i in range(dim):
        for j in range(dim):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                if other is not None:
                    ax.hist(other[:, i], bins=bins, density=True, color="grey", alpha=0.4)
                ax.hist(x[:, i], bins=bins, density=True, color=color, alpha=0.7, label=label)
                if truth is not None:
                    ax.axvline(truth[i], color="black", lw=1.2)
                ax.set_yticks([])
            else:
                if other is not None:
                    ax.scatter(other[:, j], other[:, i], s=2, color="grey", alpha=0.15)
                ax.scatter(x[:, j], x[:, i], s=2, color=color, alpha=0.25)
                if truth is not None:
                    ax.plot(truth[j], truth[i], "k+", ms=12, mew=2)
            if i == dim - 1:
                ax.set_xlabel(names[j])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
    fig.suptitle(title)
    fig.set_layout_engine("constrained")
    return fig


def pairs_posterior(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray | None = None,
    priors: Mapping[str, Any] | np.ndarray | None = None,
    dataset_id: int | None = None,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    max_points: int = 2000,
) -> Figure:
    """Corner plot of the posterior draws of dataset ``dataset_id``.

    ``estimates``: what ``workflow.sample`` returns, ``{name: (num_datasets, num_samples,
    *shape)}``, or an array ``(num_datasets, num_samples, dim)``; ``targets`` (optional, black
    marks): ``{name: (num_datasets, *shape)}`` or ``(num_datasets, dim)``; ``priors`` (optional,
    grey): samples ``(num_samples, dim)`` or ``{name: (num_samples, *shape)}``.
    ``dataset_id`` may be left out only when the draws hold one dataset; ``variable_keys``
    picks variables of dict inputs (BayesFlow's arguments, in its order).
    """
    d = bayesflow_draws(
        "plots.pairs_posterior", estimates, targets, variable_keys, variable_names, None,
        require_targets=False,
    )  # fmt: skip
    if dataset_id is None:
        if d.num_datasets != 1:
            raise ValueError(
                f"plots.pairs_posterior: the draws hold {d.num_datasets} datasets; pass "
                f"dataset_id to choose one"
            )
        dataset_id = 0
    if not 0 <= dataset_id < d.num_datasets:
        raise IndexError(
            f"plots.pairs_posterior: dataset_id {dataset_id} outside 0..{d.num_datasets - 1}"
        )
    truth = None if d.targets is None else d.targets[dataset_id]
    other = None
    if priors is not None:
        priors, _ = select_keys("plots.pairs_posterior", priors, None, variable_keys)
        other, _ = _flatten_one("plots.pairs_posterior", priors, list(d.names))
        other = other[:max_points]
    x = d.estimates[dataset_id, :max_points]
    return _corner(x, d.names, "Posterior draws", "C0", "posterior", truth, other)


def pairs_samples(
    samples: Mapping[str, Any] | np.ndarray,
    dataset_id: int | None = None,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    max_points: int = 2000,
) -> Figure:
    """Corner plot of samples ``(num_samples, dim)`` or ``{name: (num_samples, *shape)}``,
    e.g. prior draws from ``workflow.simulate``: check their ranges and dependence before
    training. Samples with a dataset axis, ``(num_datasets, num_samples, dim)``, need
    ``dataset_id``; ``variable_keys`` picks variables of a dict."""
    samples, _ = select_keys("plots.pairs_samples", samples, None, variable_keys)
    if dataset_id is not None:
        if isinstance(samples, Mapping):
            samples = {k: np.asarray(v)[dataset_id] for k, v in samples.items()}
        else:
            samples = np.asarray(samples)[dataset_id]
    x, names = _flatten_one("plots.pairs_samples", samples, variable_names)
    return _corner(x[:max_points], names, "Samples", "C2", "samples")
