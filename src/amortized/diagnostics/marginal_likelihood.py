"""Amortized marginal likelihood and self-consistency, from the posterior's own draws.

For a model with a likelihood, every draw ``theta_s ~ q(theta | y)`` gives an estimate of the
marginal likelihood,

    log p(y) = log p(theta) + log p(y | theta) - log q(theta | y)     (exact when q is),

so its spread over the draws measures how far the amortized posterior is from the true one
(*self-consistency*, Schmitt et al. 2024: zero for the exact posterior, whatever theta;
reported as a robust sd, 1.4826 times the median absolute deviation, so that the few draws
in q's tails where p is tiny, which carry no weight, do not dominate it), and
averaging the ratios gives the importance-sampling estimate

    log p^(y) = log (1/S sum_s w_s),   w_s = p(theta_s, y) / q(theta_s | y),

unbiased for p(y) (not for its log: the log is biased low by about ``se^2 / 2``), with
standard error ``se`` of log p^(y) by the delta method, ``sqrt(sum_s w~_s^2 - 1/S)`` for the
normalized weights ``w~``. Its Pareto k-hat (:func:`~amortized.diagnostics.psis.psis`) says
whether the weights' variance is finite: above ``pareto_k_threshold(S)`` the standard error
is not to be trusted and :class:`UnreliableEstimateWarning` names the datasets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from .psis import importance_log_weights, pareto_k_threshold, psis


class UnreliableEstimateWarning(UserWarning):
    """An importance-sampling estimate whose weights have a heavy tail (k-hat above the
    threshold): the proposal misses part of the posterior, and the estimate and its
    standard error may be far off."""


def consistency_spread(log_weights: np.ndarray) -> np.ndarray:
    """Self-consistency spread per dataset: 1.4826 times the median absolute deviation of
    the finite ``log p(theta_s, y) - log q(theta_s | y)`` ``(num_datasets, S)`` over the
    draws (0 for the exact posterior; NaN with fewer than two finite values).

    >>> consistency_spread(np.array([[1.0, 1.0, 1.0], [0.0, 1.0, -np.inf]]))
    array([0.    , 0.7413])
    """
    lw = np.asarray(log_weights, np.float64)
    finite = np.isfinite(lw)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN, set below
        masked = np.where(finite, lw, np.nan)
        med = np.nanmedian(masked, axis=1, keepdims=True)
        spread = 1.4826 * np.nanmedian(np.abs(masked - med), axis=1)
    return np.where(finite.sum(axis=1) > 1, spread, np.nan)


@dataclass(frozen=True)
class MarginalLikelihood:
    """Per dataset ``(num_datasets,)``: ``log_ml`` (log p^(y)), ``se`` (its Monte Carlo
    standard error), ``khat`` (Pareto k-hat of the weights), ``consistency_sd`` (the sd over
    draws of the per-draw estimates log p(theta, y) - log q(theta | y): 0 for an exact
    posterior), ``valid_draws`` (draws with a finite weight) and ``reliable`` (k-hat at or
    below the threshold)."""

    log_ml: np.ndarray
    se: np.ndarray
    khat: np.ndarray
    consistency_sd: np.ndarray
    valid_draws: np.ndarray
    reliable: np.ndarray


def marginal_likelihood_from_draws(
    log_joint: np.ndarray, log_q: np.ndarray, where: str = "marginal_likelihood"
) -> MarginalLikelihood:
    """The estimate of the module docstring from ``log p(theta_s, y)`` and
    ``log q(theta_s | y)``, both ``(num_datasets, S)``.

    >>> rng = np.random.default_rng(0)
    >>> theta = rng.normal(size=(1, 4000))          # q = the exact posterior N(0, 1)
    >>> lq = -0.5 * theta**2 - 0.5 * np.log(2 * np.pi)
    >>> ml = marginal_likelihood_from_draws(lq + np.log(0.25), lq)   # p(theta, y) = 0.25 q
    >>> round(float(ml.log_ml[0]), 6), float(ml.consistency_sd[0]) < 1e-12
    (-1.386294, True)
    """
    lw = importance_log_weights(log_joint, log_q)
    if lw.ndim != 2:
        raise ValueError(f"{where}: log densities must be (num_datasets, S), got {lw.shape}")
    s = lw.shape[1]
    finite = np.isfinite(lw)
    valid = finite.sum(axis=1)
    log_ml = logsumexp(lw, axis=1) - np.log(s)  # -inf without a finite weight
    with np.errstate(invalid="ignore", divide="ignore"):
        wn = np.exp(lw - logsumexp(lw, axis=1, keepdims=True))
        se = np.sqrt(np.maximum(np.sum(wn**2, axis=1) - 1.0 / s, 0.0))
    se = np.where(valid > 0, se, np.nan)
    consistency = consistency_spread(lw)
    khat = np.asarray(psis(lw).khat, np.float64)
    reliable = (valid > 0) & (khat <= pareto_k_threshold(s))
    bad = np.flatnonzero(~reliable)
    if bad.size:
        warnings.warn(
            f"{where}: the importance weights of {bad.size} dataset(s) (indices "
            f"{bad[:10].tolist()}{', ...' if bad.size > 10 else ''}) have Pareto k-hat above "
            f"{pareto_k_threshold(s):.2f} or no finite weight: the amortized posterior "
            f"misses part of the true one there, and their log p(y) and its standard error "
            f"are unreliable",
            UnreliableEstimateWarning,
            stacklevel=2,
        )
    return MarginalLikelihood(log_ml, se, khat, consistency, valid, reliable)
