"""Figure scaffolding shared by the plots: one panel per variable, no pyplot state."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

PANEL = 3.0  # inches per panel side


def panels(num: int, max_cols: int = 4, title: str | None = None):
    """A Figure with ``num`` panels on a grid; returns ``(figure, flat list of axes)``;
    unused panels are hidden."""
    cols = min(num, max_cols)
    rows = math.ceil(num / cols)
    fig = Figure(figsize=(PANEL * cols + 0.4, PANEL * rows + (0.5 if title else 0.2)))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes[num:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.set_layout_engine("constrained")
    return fig, list(axes[:num])
