"""Training and validation loss per epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure


def loss(
    history: Mapping[str, Sequence[float]],
    train_key: str = "loss",
    val_key: str = "val_loss",
    moving_average: int | bool | None = None,
) -> Figure:
    """Plot ``history[train_key]`` (and ``history[val_key]`` when present) against epochs;
    ``moving_average`` (epochs; ``True``: 5) overlays a smoothed training curve. Non-finite
    values are marked, not dropped. ``history`` is what ``fit_*`` returns (or a Keras-style
    object with a ``.history`` dict, as BayesFlow's fit returns)."""
    history = getattr(history, "history", history)
    if not isinstance(history, Mapping) or train_key not in history:
        raise KeyError(
            f"plots.loss: history needs a {train_key!r} list (as returned by fit_*); keys: "
            f"{sorted(history) if isinstance(history, Mapping) else type(history).__name__}"
        )
    if moving_average is True:
        moving_average = 5
    train = np.asarray(history[train_key], np.float64)
    if train.size == 0:
        raise ValueError("plots.loss: the history has no epochs")
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.add_subplot()
    epochs = np.arange(1, len(train) + 1)
    ax.plot(epochs, train, color="C0", label="training", alpha=0.6 if moving_average else 1)
    if moving_average and moving_average > 1 and len(train) >= moving_average:
        kernel = np.ones(moving_average) / moving_average
        ax.plot(
            epochs[moving_average - 1 :],
            np.convolve(train, kernel, "valid"),
            color="C0",
            label=f"training ({moving_average}-epoch mean)",
        )
    val = np.asarray(history.get(val_key) or [], np.float64)
    if val.size:
        ax.plot(np.arange(1, len(val) + 1), val, color="C1", label="validation")
    bad = epochs[~np.isfinite(train)]
    for e in bad:
        ax.axvline(e, color="red", alpha=0.3)
    if bad.size:
        ax.plot([], [], color="red", alpha=0.3, label="non-finite loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    fig.set_layout_engine("constrained")
    return fig
