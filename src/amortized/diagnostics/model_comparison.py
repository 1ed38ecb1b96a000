"""Diagnostics of amortized model comparison: is each predicted model probability right?

``estimates`` are predicted posterior model probabilities ``(num_datasets, num_models)``
(rows sum to 1); ``targets`` the models that made the datasets, one-hot ``(num_datasets,
num_models)`` or integer indices ``(num_datasets,)``. On simulations from the training
prior, a calibrated classifier's probability ``p`` is right a fraction ``p`` of the time:

- **expected calibration error** per model (Naeini et al. 2015): predictions binned into
  ``num_bins`` equal-width bins of ``p_k``; the bin-size-weighted mean of ``|mean p_k -
  share of datasets from model k|`` over bins. On ``n`` datasets a perfect classifier still
  shows about ``sqrt(num_bins / (2 pi n))`` (each bin's share is a binomial estimate);
- **accuracy**: the share of datasets whose most probable model made them (per true model:
  the recall); **Brier score** ``sum_k (p_k - 1{m = k})^2`` and **log loss** ``-log p_m``
  (both strictly proper: lower is better, a calibrated and sharper classifier wins);
- the **confusion matrix** of true against most probable model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

MC_METRICS = {
    "accuracy": "share of datasets whose most probable model made them (per true model: "
    "its recall)",
    "expected_calibration_error": "bin-weighted mean |predicted probability - observed "
    "frequency| (all: mean over models)",
    "ece_if_calibrated": "the expected calibration error that binomial noise alone gives "
    "on these datasets if the probabilities were exact (the floor of the row above)",
    "brier_score": "mean (p_k - 1{true = k})^2 (all: summed over models, the multiclass "
    "Brier score)",
    "log_loss": "mean -log p(true model) (per true model, and over all datasets)",
}


def check_model_predictions(
    where: str, estimates: Any, targets: Any, model_names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(probs (n, K) float64, true indices (n,) int, names)``, or an error naming what
    is wrong."""
    probs = np.asarray(estimates, np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(
            f"{where}: estimates must be model probabilities (num_datasets, num_models), "
            f"got shape {probs.shape}"
        )
    n, k = probs.shape
    if (
        not np.all(np.isfinite(probs))
        or np.any(probs < 0)
        or np.any(np.abs(probs.sum(1) - 1) > 1e-3)
    ):
        raise ValueError(
            f"{where}: estimates must be probabilities, each row summing to 1 (pass "
            f"estimate(...)['model_probs'], not logits)"
        )
    t = np.asarray(targets)
    if t.shape == (n, k):
        if not (np.all((t == 0) | (t == 1)) and np.all(t.sum(axis=1) == 1)):
            raise ValueError(f"{where}: one-hot targets must have a single 1 per row")
        idx = np.argmax(t, axis=1)
    elif t.shape in ((n,), (n, 1)):
        idx = t.reshape(n)
        if not np.issubdtype(idx.dtype, np.integer) and not np.all(idx == np.round(idx)):
            raise ValueError(f"{where}: integer model indices expected, got {idx[:5]}")
        idx = idx.astype(int)
        if idx.min() < 0 or idx.max() >= k:
            raise ValueError(f"{where}: model indices must lie in 0..{k - 1}")
    else:
        raise ValueError(
            f"{where}: targets must be one-hot ({n}, {k}) or model indices ({n},), got "
            f"shape {t.shape}"
        )
    names = [f"M{i}" for i in range(k)] if model_names is None else [str(m) for m in model_names]
    if len(names) != k:
        raise ValueError(f"{where}: {k} model_names expected, got {len(names)}")
    return probs, idx, names


def calibration_curve(
    hits: np.ndarray, probs: np.ndarray, num_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For predictions ``probs (n,)`` of events ``hits (n,)`` (0/1), per non-empty
    equal-width bin: the observed frequency, the mean prediction and the count.

    >>> f, p, c = calibration_curve(np.array([0, 1, 1, 1]), np.array([0.1, 0.2, 0.9, 0.95]), 2)
    >>> f.tolist(), p.round(3).tolist(), c.tolist()
    ([0.5, 1.0], [0.15, 0.925], [2, 2])
    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"calibration_curve: num_bins must be a positive int, got {num_bins!r}")
    bins = np.clip((probs * num_bins).astype(int), 0, num_bins - 1)
    counts = np.bincount(bins, minlength=num_bins)
    sum_p = np.bincount(bins, weights=probs, minlength=num_bins)
    sum_h = np.bincount(bins, weights=hits.astype(np.float64), minlength=num_bins)
    keep = counts > 0
    return sum_h[keep] / counts[keep], sum_p[keep] / counts[keep], counts[keep]


def expected_calibration_error(
    estimates: Any,
    targets: Any,
    model_names: Sequence[str] | None = None,
    num_bins: int = 10,
    return_probs: bool = False,
) -> dict[str, Any]:
    """Expected calibration error per model (module docstring), as BayesFlow's dict
    ``{"values" (num_models,), "metric_name", "model_names"}``; with ``return_probs`` also
    ``"probs_true"`` and ``"probs_pred"``: each model's calibration curve.
    ``"if_calibrated"``: what binomial noise alone would give if the probabilities were
    exact (the floor that a finite number of datasets puts under the error).

    Model 0, two bins: {0.3, 0.4} predict 0.35 and half come from model 0 (error 0.15);
    {0.8, 0.9} predict 0.85 and both do (0.15); weighted: 0.15.

    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    >>> expected_calibration_error(p, np.array([0, 0, 1, 0]), num_bins=2)["values"].round(3)
    array([0.15, 0.15])
    """
    probs, idx, names = check_model_predictions(
        "expected_calibration_error", estimates, targets, model_names
    )
    values, true, pred, floor = [], [], [], []
    for k in range(probs.shape[1]):
        floor.append(_ece_floor(probs[:, k], num_bins))
        f, p, c = calibration_curve(idx == k, probs[:, k], num_bins)
        values.append(float(np.sum(np.abs(f - p) * c) / len(idx)))
        true.append(f)
        pred.append(p)
    out = {
        "values": np.asarray(values),
        "metric_name": "Expected Calibration Error",
        "model_names": names,
        "if_calibrated": np.asarray(floor),
    }
    if return_probs:
        out |= {"probs_true": true, "probs_pred": pred}
    return out


def _ece_floor(p: np.ndarray, num_bins: int) -> float:
    """The expected calibration error of exact probabilities ``p`` (one model's column)
    from binomial noise alone: in a bin of ``n_b`` predictions the observed share has
    standard deviation ``sqrt(sum p_i (1 - p_i)) / n_b`` and its absolute error a mean
    ``sqrt(2 / pi)`` times that (normal approximation)."""
    bins = np.clip((p * num_bins).astype(int), 0, num_bins - 1)
    var = np.bincount(bins, weights=p * (1 - p), minlength=num_bins)
    return float(np.sqrt(2 / np.pi) * np.sum(np.sqrt(var)) / len(p))


def confusion_matrix(estimates: Any, targets: Any, normalize: str | None = None) -> np.ndarray:
    """``(num_models, num_models)``: row = true model, column = most probable model;
    counts, or shares of each row (``normalize="true"``), column (``"pred"``) or of all
    datasets (``"all"``).

    >>> confusion_matrix(np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]]), np.array([0, 0, 1]))
    array([[1, 1],
           [0, 1]])
    """
    probs, idx, _ = check_model_predictions("confusion_matrix", estimates, targets)
    k = probs.shape[1]
    cm = np.zeros((k, k), int)
    np.add.at(cm, (idx, np.argmax(probs, axis=1)), 1)
    if normalize is None:
        return cm
    axis = {"true": 1, "pred": 0, "all": None}
    if normalize not in axis:
        raise ValueError(
            f"confusion_matrix: normalize must be None, 'true', 'pred' or 'all', got {normalize!r}"
        )
    total = cm.sum(axis=axis[normalize], keepdims=axis[normalize] is not None)
    return cm / np.maximum(total, 1)


def model_comparison_diagnostics(
    estimates: Any,
    targets: Any,
    model_names: Sequence[str] | None = None,
    num_bins: int = 10,
) -> pd.DataFrame:
    """A table with one row per metric (:data:`MC_METRICS`) and one column per true model
    plus ``"all"``; ``attrs``: ``num_datasets`` and the ``confusion_matrix`` (counts).

    >>> rng = np.random.default_rng(0)
    >>> p1 = rng.uniform(size=4000)                     # calibrated by construction:
    >>> m = (rng.uniform(size=4000) < p1).astype(int)   # model 1 made it with prob. p1
    >>> t = model_comparison_diagnostics(np.stack([1 - p1, p1], 1), m)
    >>> bool(t.loc["expected_calibration_error", "all"] < 0.03)
    True
    """
    probs, idx, names = check_model_predictions(
        "model_comparison_diagnostics", estimates, targets, model_names
    )
    k = probs.shape[1]
    onehot = np.eye(k)[idx]
    hit = np.argmax(probs, axis=1) == idx
    log_loss = -np.log(np.clip(probs[np.arange(len(idx)), idx], 1e-300, None))
    ece_out = expected_calibration_error(probs, idx, names, num_bins)
    ece, floor = ece_out["values"], ece_out["if_calibrated"]
    brier = np.mean((probs - onehot) ** 2, axis=0)

    def per_model(v):
        return [float(np.mean(v[idx == j])) if np.any(idx == j) else np.nan for j in range(k)]

    table = pd.DataFrame(
        {
            "accuracy": [*per_model(hit), float(np.mean(hit))],
            "expected_calibration_error": [*ece, float(np.mean(ece))],
            "ece_if_calibrated": [*floor, float(np.mean(floor))],
            "brier_score": [*brier, float(np.sum(brier))],
            "log_loss": [*per_model(log_loss), float(np.mean(log_loss))],
        },
        index=[*names, "all"],
    ).T
    table.attrs["num_datasets"] = len(idx)
    table.attrs["confusion_matrix"] = confusion_matrix(probs, idx).tolist()
    return table


def accuracy(estimates: Any, targets: Any, model_names: Sequence[str] | None = None) -> dict:
    """BayesFlow's ``accuracy``: ``{"values": overall accuracy, ...}``."""
    probs, idx, names = check_model_predictions("accuracy", estimates, targets, model_names)
    value = float(np.mean(np.argmax(probs, axis=1) == idx))
    return {"values": np.asarray(value), "metric_name": "Accuracy", "model_names": names}


def brier_score(estimates: Any, targets: Any, model_names: Sequence[str] | None = None) -> dict:
    """BayesFlow's ``brier_score``: the multiclass Brier score ``mean sum_k (p_k -
    1{m = k})^2``."""
    probs, idx, names = check_model_predictions("brier_score", estimates, targets, model_names)
    value = float(np.mean(np.sum((probs - np.eye(probs.shape[1])[idx]) ** 2, axis=1)))
    return {"values": np.asarray(value), "metric_name": "Brier Score", "model_names": names}
