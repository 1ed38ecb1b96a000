"""Figures of amortized model comparison: calibration curves and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..model_comparison import (
    calibration_curve,
    check_model_predictions,
    confusion_matrix,
    expected_calibration_error,
)
from ._layout import panels


def mc_calibration(
    pred_models: Any,
    true_models: Any,
    model_names: Sequence[str] | None = None,
    num_bins: int = 10,
) -> Figure:
    """One panel per model: the observed frequency of the model against its predicted
    probability (binned), with a 95% binomial interval per bin, the diagonal, the share of
    predictions per bin (grey bars) and the expected calibration error.
    ``pred_models (num_datasets, num_models)`` probabilities, ``true_models`` one-hot or
    indices."""
    probs, idx, names = check_model_predictions(
        "plots.mc_calibration", pred_models, true_models, model_names
    )
    ece = expected_calibration_error(probs, idx, names, num_bins)["values"]
    fig, axes = panels(len(names), title="Calibration of model probabilities")
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    for k, (ax, name) in enumerate(zip(axes, names, strict=True)):
        freq, pred, count = calibration_curve(idx == k, probs[:, k], num_bins)
        half = 1.96 * np.sqrt(np.clip(pred * (1 - pred), 1e-12, None) / count)
        ax.hist(probs[:, k], bins=edges, weights=np.full(len(idx), 1 / len(idx)),
                color="grey", alpha=0.3, label="share of predictions")  # fmt: skip
        ax.fill_between(pred, np.clip(pred - half, 0, 1), np.clip(pred + half, 0, 1),
                        color="C0", alpha=0.2, label="95% if calibrated")  # fmt: skip
        ax.plot(pred, freq, "o-", color="C0", ms=3, label="observed")
        ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls="--")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{name}  (ECE {ece[k]:.3f})")
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed frequency")
    axes[0].legend(fontsize="small", loc="upper left")
    return fig


def mc_confusion_matrix(
    pred_models: Any,
    true_models: Any,
    model_names: Sequence[str] | None = None,
    normalize: str | None = "true",
) -> Figure:
    """The confusion matrix (rows: true model, columns: most probable model), as shares of
    each true model by default (``normalize`` as in
    :func:`~amortized.diagnostics.model_comparison.confusion_matrix`)."""
    probs, idx, names = check_model_predictions(
        "plots.mc_confusion_matrix", pred_models, true_models, model_names
    )
    cm = confusion_matrix(probs, idx, normalize)
    counts = confusion_matrix(probs, idx)
    k = len(names)
    fig = Figure(figsize=(1.2 * k + 2.2, 1.2 * k + 1.4))
    ax = fig.subplots()
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=cm.max() if normalize is None else 1)
    for i in range(k):
        for j in range(k):
            text = f"{cm[i, j]:.2f}\n({counts[i, j]})" if normalize else f"{cm[i, j]}"
            dark = cm[i, j] > 0.6 * (cm.max() if normalize is None else 1)
            ax.text(j, i, text, ha="center", va="center", fontsize="small",
                    color="white" if dark else "black")  # fmt: skip
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("most probable model")
    ax.set_ylabel("true model")
    ax.set_title("Confusion matrix")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.set_layout_engine("constrained")
    return fig
