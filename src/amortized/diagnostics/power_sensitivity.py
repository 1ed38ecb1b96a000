"""Power-scaling sensitivity: how much a posterior moves when the prior or the likelihood
is raised to a power ``gamma`` near 1 (Kallioinen et al. 2024, priorsense), per unit of
``log gamma``.

For draws ``(num_datasets, S, dim)`` of the posteriors at ``gamma = exp(-h)`` and
``exp(+h)`` (or one set of draws with importance log-weights for each), and the base
posterior's standard deviation ``sd`` at ``gamma = 1``, per dataset and dimension:

- ``mean``: ``(mean_+ - mean_-) / (2 h sd)``, the shift of the posterior mean in posterior
  standard deviations per unit of ``log gamma``;
- ``log_sd``: ``(log sd_+ - log sd_-) / (2 h)``, the relative change of the spread;
- ``q05``, ``q50``, ``q95``: the shifts of those quantiles, in ``sd`` per unit ``log gamma``;
- ``sensitivity``: the largest absolute value of these.

For a normal prior ``N(m0, s0^2 / gamma)`` and a normal likelihood the prior's share of the
posterior precision is ``w``; then ``log_sd = -w / 2`` and ``mean = w (m0 - m) / sd``: a
sensitivity of 0.1 (:data:`amortized.diagnostics.ratings.POWER_SENSITIVITY_THRESHOLD`)
is a prior holding a fifth of the precision, or a mean moving 0.07 sd when the prior's
strength is doubled.

The likelihood side needs no retraining: ``p(theta) p(y | theta)^gamma`` is the base
posterior reweighted by ``p(y | theta)^(gamma - 1)``, so ``log w = ±h log p(y | theta)``
(self-normalized, Pareto-smoothed; its k-hat is returned).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the quantiles whose shifts are reported
QUANTILES = (0.05, 0.5, 0.95)
MEASURES = ("mean", "log_sd", "q05", "q50", "q95")


@dataclass(frozen=True)
class Summaries:
    """Per dataset and dimension ``(num_datasets, dim)``: ``mean``, ``sd`` and the
    ``quantiles`` ``(len(QUANTILES), num_datasets, dim)`` of (weighted) draws."""

    mean: np.ndarray
    sd: np.ndarray
    quantiles: np.ndarray


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs) -> np.ndarray:
    """Quantiles of ``x (S,)`` with normalized weights ``w (S,)`` (the inverse of the
    weighted ECDF interpolated at the midpoints of the weights' steps)."""
    order = np.argsort(x)
    xs, ws = x[order], w[order]
    cdf = np.cumsum(ws) - 0.5 * ws
    return np.interp(qs, cdf, xs)


def summaries(draws: np.ndarray, log_weights: np.ndarray | None = None) -> Summaries:
    """Mean, sd and :data:`QUANTILES` of ``draws (num_datasets, S, dim)``, weighted by
    ``exp(log_weights) (num_datasets, S)`` when given (normalized here)."""
    x = np.asarray(draws, np.float64)
    if x.ndim != 3:
        raise ValueError(f"summaries: draws must be (num_datasets, S, dim), got {x.shape}")
    n, s, d = x.shape
    if log_weights is None:
        w = np.full((n, s), 1.0 / s)
    else:
        lw = np.asarray(log_weights, np.float64)
        if lw.shape != (n, s):
            raise ValueError(f"summaries: log_weights must be {(n, s)}, got {lw.shape}")
        w = np.exp(lw - lw.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
    mean = np.einsum("ns,nsd->nd", w, x)
    var = np.einsum("ns,nsd->nd", w, (x - mean[:, None]) ** 2)
    q = np.empty((len(QUANTILES), n, d))
    for i in range(n):
        for j in range(d):
            q[:, i, j] = _weighted_quantiles(x[i, :, j], w[i], QUANTILES)
    return Summaries(mean, np.sqrt(var), q)


def power_derivatives(
    minus: Summaries, plus: Summaries, base_sd: np.ndarray, step: float
) -> dict[str, np.ndarray]:
    """The measures of the module docstring, each ``(num_datasets, dim)``, from the
    summaries at ``gamma = exp(-step)`` and ``exp(+step)`` and the base posterior's sd."""
    if not step > 0:
        raise ValueError(f"power_derivatives: step must be positive, got {step}")
    sd = np.maximum(np.asarray(base_sd, np.float64), np.finfo(np.float64).tiny)
    out = {
        "mean": (plus.mean - minus.mean) / (2 * step * sd),
        "log_sd": (np.log(plus.sd) - np.log(minus.sd)) / (2 * step),
    }
    for i, name in enumerate(("q05", "q50", "q95")):
        out[name] = (plus.quantiles[i] - minus.quantiles[i]) / (2 * step * sd)
    out["sensitivity"] = np.max(np.abs(np.stack([out[m] for m in MEASURES])), axis=0)
    return out
