"""Pareto-smoothed importance sampling (Vehtari et al. 2024) of amortized draws.

For draws ``theta_s ~ q(theta | y)`` the log-weights are
``log w_s = log p(y | theta_s) + log p(theta_s) - log q(theta_s | y)`` (all in one
parameterization). PSIS replaces the largest weights by quantiles of a generalized Pareto
fit; its shape ``k-hat`` says whether the estimate can be trusted: accept when
``k-hat <= min(1 - 1 / log10(S), 0.7)`` for ``S`` draws. ArviZ's ``psislw`` does the
smoothing; this module adds the threshold, the effective sample size
``1 / sum_s w_s^2`` of the normalized weights and resampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pareto_k_threshold(num_draws: int) -> float:
    """``min(1 - 1 / log10(S), 0.7)``: the largest k-hat at which PSIS with ``S`` draws is
    reliable."""
    if num_draws < 2:
        raise ValueError(f"pareto_k_threshold: need at least 2 draws, got {num_draws}")
    return float(min(1.0 - 1.0 / np.log10(num_draws), 0.7))


@dataclass(frozen=True)
class PsisResult:
    """Per dataset: ``log_weights (num_datasets, S)`` smoothed and normalized (logsumexp 0),
    ``khat (num_datasets,)``, ``ess (num_datasets,)``, ``accepted`` (k-hat at most
    ``threshold``)."""

    log_weights: np.ndarray
    khat: np.ndarray
    ess: np.ndarray
    threshold: float

    @property
    def accepted(self) -> np.ndarray:
        return self.khat <= self.threshold


def psis(log_weights: np.ndarray) -> PsisResult:
    """Pareto-smooth raw log-weights ``(S,)`` or ``(num_datasets, S)``.

    >>> rng = np.random.default_rng(0)
    >>> r = psis(np.zeros((2, 1000)))          # proposal = target: equal weights
    >>> bool(np.allclose(r.ess, 1000))
    True
    """
    import arviz as az

    lw = np.asarray(log_weights, np.float64)
    if lw.ndim == 1:
        lw = lw[None]
    if lw.ndim != 2:
        raise ValueError(f"psis: log_weights must be (S,) or (num_datasets, S), got {lw.shape}")
    if np.any(np.isnan(lw)) or np.any(lw == np.inf):
        raise ValueError("psis: log_weights hold NaN or +inf (check the log densities)")
    s = lw.shape[1]
    finite = np.isfinite(lw)
    none = ~finite.any(axis=1)  # every weight zero: nothing to smooth, fails the check
    # constant weights make the Pareto fit degenerate: smooth nothing and report k-hat -inf
    hi = np.max(np.where(finite, lw, -np.inf), axis=1)
    lo = np.min(np.where(finite, lw, np.inf), axis=1)
    flat = ~none & (hi - lo < 1e-9)
    fit = ~flat & ~none
    out = np.full_like(lw, -np.inf)
    khat = np.full(lw.shape[0], -np.inf)
    khat[none] = np.inf
    if np.any(fit):
        smoothed, k = az.psislw(lw[fit], normalize=True)
        out[fit] = smoothed
        khat[fit] = np.asarray(k)
    if np.any(flat):
        # equal weights on the finite draws (zero-weight draws stay at -inf)
        out[flat] = np.where(
            finite[flat], -np.log(finite[flat].sum(axis=1, keepdims=True)), -np.inf
        )
    w = np.exp(out)
    ess = np.where(none, 0.0, 1.0 / np.maximum(np.sum(w**2, axis=1), 1e-300))
    return PsisResult(out, khat, ess, pareto_k_threshold(s))


def resample(
    draws: np.ndarray,
    log_weights: np.ndarray,
    num: int,
    replace: bool = True,
    seed: int | None = None,
) -> np.ndarray:
    """Draw ``num`` rows of ``draws (S, dim)`` with probabilities ``exp(log_weights)``
    (normalized). ``replace=False`` gives distinct draws, e.g. as MCMC starting points."""
    p = np.exp(np.asarray(log_weights, np.float64) - np.max(log_weights))
    p /= p.sum()
    if not replace and num > np.count_nonzero(p):
        raise ValueError(
            f"resample: {num} distinct draws requested but only {np.count_nonzero(p)} have "
            f"non-zero weight"
        )
    idx = np.random.default_rng(seed).choice(len(p), size=num, replace=replace, p=p)
    return np.asarray(draws)[idx]
