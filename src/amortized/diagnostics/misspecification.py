"""Misspecification test in summary space (Schmitt et al. 2021, 2024): does an observed
dataset look like the simulations the network was trained on?

A network maps each dataset to what it conditions on, ``s = h(y)`` (the learned summaries);
simulations from the model give a reference sample of ``s``. An observed dataset whose
summary lies where simulations rarely go is *out of simulation*: the model cannot produce
data like it (misspecification), and the network's posterior there is an extrapolation.

The statistic is the maximum mean discrepancy between the observed summaries and the
reference, with a sum of Gaussian kernels (:mod:`amortized.diagnostics.mmd`) on summaries
whitened by the reference's mean and covariance (so that no summary dominates by its scale),
at bandwidths 0.25-4 times the reference's median pairwise distance:

- one dataset (``batch=False``): the squared MMD between the point mass at its summary and
  the reference, ``k(s, s) - 2 mean_j k(s, r_j) + mean_{j != j'} k(r_j, r_j')``;
- a batch of ``n`` datasets (``batch=True``): the unbiased squared MMD between their
  summaries and the reference (more power when all datasets share one misfit).

The null distribution is the same statistic for fresh simulations (``null_summaries``, not
part of the reference): single simulated datasets, or ``num_null`` random batches of ``n``
of them. The p-value is ``(1 + #{null >= observed}) / (1 + #null)``, valid at any sample
size (a simulated dataset's p-value is uniform up to ties), and a dataset is flagged when it
is at most ``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mmd import cross_kernel_matrix, kernel_matrix, median_distance
from .ood import ridged_covariance

#: bandwidths relative to the median pairwise distance of the whitened reference
BANDWIDTH_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class MisspecificationTest:
    """``statistic`` and ``p_value`` ``(num_datasets,)`` (one entry for a batch test),
    ``null`` the statistics of simulated datasets (or batches), ``alpha``; ``flagged``:
    ``p_value <= alpha`` (out of simulation)."""

    statistic: np.ndarray
    p_value: np.ndarray
    null: np.ndarray
    alpha: float
    batch: bool

    @property
    def flagged(self) -> np.ndarray:
        return self.p_value <= self.alpha


def _as_summaries(name: str, x, dim: int | None = None) -> np.ndarray:
    s = np.asarray(x, np.float64)
    if s.ndim != 2 or (dim is not None and s.shape[1] != dim):
        want = "(num_datasets, dim)" if dim is None else f"(num_datasets, {dim})"
        raise ValueError(f"misspecification_test: {name} must be {want}, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        bad = np.flatnonzero(~np.all(np.isfinite(s), axis=1))
        raise ValueError(
            f"misspecification_test: {name} has non-finite summaries in rows {bad[:10].tolist()}"
        )
    return s


def _whitener(ref: np.ndarray):
    """The map ``s -> L^-1 (s - mean)`` with ``L L^T`` the reference's ridged covariance
    (:func:`~amortized.diagnostics.ood.ridged_covariance`)."""
    mean = ref.mean(axis=0)
    chol = np.linalg.cholesky(ridged_covariance(ref))

    def whiten(s):
        return np.linalg.solve(chol, (s - mean).T).T

    return whiten


def misspecification_test(
    observed_summaries,
    reference_summaries,
    null_summaries,
    *,
    alpha: float = 0.05,
    batch: bool = False,
    num_null: int = 1000,
    seed: int = 0,
) -> MisspecificationTest:
    """Test each observed dataset (or the batch) against simulations, in summary space
    (see the module docstring).

    Parameters
    ----------
    observed_summaries : (num_datasets, dim)
        What the network conditions on for each observed dataset (``workflow.embed``).
    reference_summaries : (m, dim)
        The same for simulations from the model (a few thousand).
    null_summaries : (m0, dim)
        The same for other simulations: the null distribution (at least 1 / alpha of
        them per dataset test; for a batch test at least the batch size).
    alpha : float, default 0.05
    batch : bool, default False
        One test of all observed datasets together instead of one per dataset.
    num_null : int, default 1000
        Random batches of simulations for the batch test's null.
    seed : int, default 0
        Seeds the batch test's random batches.

    >>> rng = np.random.default_rng(0)
    >>> ref, null = rng.normal(size=(1000, 2)), rng.normal(size=(500, 2))
    >>> obs = np.array([[0.1, -0.3], [6.0, 6.0]])
    >>> misspecification_test(obs, ref, null).flagged.tolist()
    [False, True]
    """
    if not 0 < alpha < 1:
        raise ValueError(f"misspecification_test: alpha must lie in (0, 1), got {alpha}")
    ref = _as_summaries("reference_summaries", reference_summaries)
    dim = ref.shape[1]
    obs = _as_summaries("observed_summaries", observed_summaries, dim)
    null_s = _as_summaries("null_summaries", null_summaries, dim)
    if len(ref) < 2 * dim + 2:
        raise ValueError(
            f"misspecification_test: {len(ref)} reference summaries are too few for {dim} "
            f"summary dimensions (need more than 2 dim + 1)"
        )
    whiten = _whitener(ref)
    ref, obs, null_s = whiten(ref), whiten(obs), whiten(null_s)
    half = len(ref) // 2
    bw = median_distance(ref[:half], ref[half:], seed=seed) * np.asarray(BANDWIDTH_FACTORS)
    k_ref = kernel_matrix(ref, bw)  # diagonal 0
    ref_term = k_ref.sum() / (len(ref) * (len(ref) - 1))
    self_term = float(len(bw))  # k(s, s) summed over the bandwidths
    # the mean over reference rows of the summed kernels k(s, r_j), per summary s
    obs_cross = cross_kernel_matrix(obs, ref, bw).mean(axis=1)
    null_cross = cross_kernel_matrix(null_s, ref, bw).mean(axis=1)
    if not batch:
        if len(null_s) * alpha < 1:
            raise ValueError(
                f"misspecification_test: {len(null_s)} null summaries cannot give a p-value "
                f"of {alpha} or less; give at least {int(np.ceil(1 / alpha))}"
            )
        stat = self_term - 2 * obs_cross + ref_term
        null = self_term - 2 * null_cross + ref_term
    else:
        n = len(obs)
        if n < 2 or len(null_s) < n:
            raise ValueError(
                f"misspecification_test: a batch test needs at least 2 observed datasets and "
                f"as many null summaries (got {n} and {len(null_s)})"
            )

        def batch_stat(rows: np.ndarray, cross: np.ndarray) -> float:
            k = kernel_matrix(rows, bw)
            return float(k.sum() / (len(rows) * (len(rows) - 1)) - 2 * cross.mean() + ref_term)

        stat = np.array([batch_stat(obs, obs_cross)])
        rng = np.random.default_rng(seed)
        picks = [rng.choice(len(null_s), n, replace=False) for _ in range(int(num_null))]
        null = np.array([batch_stat(null_s[p], null_cross[p]) for p in picks])
    p = (1 + (null[None, :] >= stat[:, None]).sum(axis=1)) / (1 + len(null))
    return MisspecificationTest(stat, p, null, float(alpha), bool(batch))
