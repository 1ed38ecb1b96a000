"""Ensemble figures: every member's training curves, and where the members disagree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ._layout import panels


def member_losses(histories: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Each member's training loss (solid) and validation loss (dashed) against epochs,
    one colour per member. ``histories``: member name -> history (as ``fit_*`` returns)."""
    if not histories:
        raise ValueError("member_losses: no histories")
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.add_subplot()
    for i, (name, h) in enumerate(histories.items()):
        loss = np.asarray(h.get("loss") or [], np.float64)
        val = np.asarray(h.get("val_loss") or [], np.float64)
        ax.plot(np.arange(1, loss.size + 1), loss, color=f"C{i % 10}", label=f"{name}")
        if val.size:
            ax.plot(np.arange(1, val.size + 1), val, color=f"C{i % 10}", ls="--")
    ax.plot([], [], color="0.4", ls="--", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(frameon=False, fontsize="small")
    ax.grid(alpha=0.3)
    fig.set_layout_engine("constrained")
    return fig


def disagreement_plot(
    disagreement: np.ndarray,
    targets: np.ndarray,
    names: Sequence[str],
    threshold: float,
    flagged: np.ndarray | None = None,
) -> Figure:
    """One panel per parameter: each held-out dataset's disagreement between the members
    (spread of their posterior means in posterior sd) against the parameter's true value,
    with the threshold drawn; datasets flagged by any parameter in red. ``disagreement``
    and ``targets`` ``(num_datasets, dim)``."""
    d = np.asarray(disagreement, np.float64)
    t = np.asarray(targets, np.float64)
    if d.shape != t.shape or d.ndim != 2 or d.shape[1] != len(names):
        raise ValueError(
            f"disagreement_plot: disagreement {d.shape} and targets {t.shape} must both be "
            f"(num_datasets, dim={len(names)})"
        )
    bad = np.zeros(len(d), bool) if flagged is None else np.asarray(flagged, bool)
    fig, axes = panels(len(names), max_cols=3, title="Disagreement between ensemble members")
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        ax.scatter(t[~bad, j], d[~bad, j], s=8, color="C0", label="agree")
        if bad.any():
            ax.scatter(t[bad, j], d[bad, j], s=10, color="C3", label="flagged")
        ax.axhline(threshold, color="0.3", ls="--", lw=0.8, label="threshold")
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel("sd of member means / posterior sd")
        ax.set_title(name)
    axes[0].legend(frameon=False, fontsize="small")
    return fig
