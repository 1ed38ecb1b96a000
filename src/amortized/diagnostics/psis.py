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

import warnings
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
        # ArviZ's Pareto fit overflows on extreme weight tails (its RuntimeWarning says
        # nothing a user can act on); such a fit returns a non-finite k-hat, which is
        # reported as inf, a failed check, per dataset
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            smoothed, k = az.psislw(lw[fit], normalize=True)
        k = np.asarray(k, np.float64)
        out[fit] = np.where(np.isnan(smoothed), -np.inf, smoothed)
        khat[fit] = np.where(np.isfinite(k), k, np.inf)
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


@dataclass(frozen=True)
class MomentMatchResult:
    """``draws (S, dim)`` and ``log_q (S,)`` of the adapted proposal, the PSIS result of
    their weights (one dataset) and ``transforms``, how many affine maps were kept."""

    draws: np.ndarray
    log_q: np.ndarray
    psis: PsisResult
    transforms: int


def importance_log_weights(log_target: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """``log p - log q`` in float64, with NaN (a density undefined there) and +inf (q
    underflowed at its own draw) set to -inf: such draws carry no usable weight, and
    :func:`psis` refuses NaN and +inf."""
    with np.errstate(invalid="ignore"):  # -inf - -inf: handled on the next line
        lw = np.asarray(log_target, np.float64) - np.asarray(log_q, np.float64)
    return np.where(np.isnan(lw) | (lw == np.inf), -np.inf, lw)


def _affine_candidates(u: np.ndarray, w: np.ndarray):
    """The three maps of implicitly adaptive importance sampling (Paananen et al. 2021), as
    ``(A, mean, mean_w)`` for ``u' = (u - mean) A^T + mean_w``: match the weighted mean; then also
    the weighted marginal variances; then the weighted covariance."""
    mean = u.mean(axis=0)
    mean_w = w @ u
    c = u - mean
    d = u.shape[1]
    yield np.eye(d), mean, mean_w
    var, var_w = c.var(axis=0), w @ (u - mean_w) ** 2
    if np.all(var > 0) and np.all(var_w > 0):
        yield np.diag(np.sqrt(var_w / var)), mean, mean_w
    cov = c.T @ c / len(u)
    cov_w = (u - mean_w).T @ ((u - mean_w) * w[:, None])
    try:
        a = np.linalg.cholesky(cov_w) @ np.linalg.inv(np.linalg.cholesky(cov))
    except np.linalg.LinAlgError:
        return
    yield a, mean, mean_w


def moment_match(
    draws: np.ndarray,
    log_q: np.ndarray,
    log_target,
    max_iterations: int = 10,
) -> MomentMatchResult:
    """Adapt an importance-sampling proposal by affine maps of its own draws (implicitly
    adaptive importance sampling, Paananen et al. 2021) until PSIS accepts it.

    With ``u_s ~ q`` and an invertible affine map ``u' = A (u - m) + m_w``, the moved draws
    follow ``q'(u') = q(u) / |det A|``, so their importance weights
    ``p(u') / q'(u')`` are exact and need only the target density at the moved draws, no new
    proposal evaluations. Maps tried in turn: match the PSIS-weighted mean, then also the
    weighted marginal variances, then the weighted covariance; a map is kept when it lowers
    k-hat, and the search restarts from the first map until no map helps or
    ``max_iterations`` maps were kept (a proposal that passes from the start is returned
    as it is).

    Parameters
    ----------
    draws : (S, dim)
        Proposal draws in an unconstrained space (all finite).
    log_q : (S,)
        Their proposal log density in that space (finite).
    log_target : callable ``(S, dim) -> (S,)``
        Unnormalized target log density (``-inf`` outside its support).

    >>> rng = np.random.default_rng(0)
    >>> u = rng.normal(size=(2000, 1))                       # proposal N(0, 1)
    >>> lq = -0.5 * u[:, 0] ** 2
    >>> r = moment_match(u, lq, lambda x: -0.5 * ((x[:, 0] - 3.0) / 0.5) ** 2)
    >>> bool(r.psis.accepted[0])                             # target N(3, 0.5^2)
    True
    """
    u = np.asarray(draws, np.float64)
    lq = np.asarray(log_q, np.float64)
    if u.ndim != 2 or lq.shape != u.shape[:1]:
        raise ValueError(
            f"moment_match: draws must be (S, dim) and log_q (S,), got {u.shape} and {lq.shape}"
        )
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(lq))):
        raise ValueError("moment_match: draws and log_q must be finite")
    lw = importance_log_weights(log_target(u), lq)
    r = psis(lw)
    if r.accepted[0]:
        return MomentMatchResult(u, lq, r, 0)
    kept = 0
    # past the threshold too: k-hat estimated from S draws understates the tail of a
    # proposal still narrower than the target, so keep adapting while a map helps
    while kept < max_iterations and np.isfinite(lw).any():
        w = np.exp(r.log_weights[0])
        for a, mean, mean_w in _affine_candidates(u, w):
            u_new = (u - mean) @ a.T + mean_w
            lq_new = lq - np.linalg.slogdet(a)[1]
            if not np.all(np.isfinite(u_new)):
                continue
            lw_new = importance_log_weights(log_target(u_new), lq_new)
            r_new = psis(lw_new)
            if r_new.khat[0] < r.khat[0]:
                u, lq, lw, r = u_new, lq_new, lw_new, r_new
                kept += 1
                break
        else:
            break
    return MomentMatchResult(u, lq, r, kept)
