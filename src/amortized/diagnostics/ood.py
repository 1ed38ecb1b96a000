"""Out-of-distribution check of observed datasets in the space of learned summaries.

A network is only trustworthy where it was trained. Summaries ``s = h(y)`` of the training
simulations give a reference: their mean ``m`` and covariance ``C``; an observed dataset is
flagged when its Mahalanobis distance ``sqrt((s - m)^T C^-1 (s - m))`` exceeds the
``1 - alpha`` quantile of the training datasets' own distances (``alpha`` = 0.05 by default,
so about 5% of in-distribution datasets are flagged). ``mmd_check`` is the batch-level
option: the MMD between the observed summaries and the training summaries against its
distribution over random training subsets of the same size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mmd import kernel_matrix, median_distance, mmd, split_mmds


@dataclass(frozen=True)
class SummaryReference:
    """Mean ``(d,)``, inverse covariance ``(d, d)`` and distance cut-off of training
    summaries; ``summaries`` ``(m, d)``: the summaries themselves (kept for the kernel
    misspecification test, :meth:`misspecification_p`)."""

    mean: np.ndarray
    precision: np.ndarray
    cutoff: float
    alpha: float
    summaries: np.ndarray | None = None

    def misspecification_p(self, summaries: np.ndarray) -> np.ndarray:
        """``(num_datasets,)``: the p-value of each dataset's kernel misspecification test
        (:func:`~amortized.diagnostics.misspecification.misspecification_test`), the
        reference's first half as the reference and the second as the null."""
        from .misspecification import misspecification_test

        if self.summaries is None:
            raise ValueError("SummaryReference: built without its summaries")
        half = len(self.summaries) // 2
        ref, null = self.summaries[:half], self.summaries[half:]
        return misspecification_test(summaries, ref, null, alpha=self.alpha).p_value

    def distances(self, summaries: np.ndarray) -> np.ndarray:
        s = np.asarray(summaries, np.float64)
        if s.ndim != 2 or s.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"SummaryReference.distances: expected summaries (num_datasets, "
                f"{self.mean.shape[0]}), got {s.shape}"
            )
        d = s - self.mean
        return np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", d, self.precision, d), 0.0))

    def flags(self, summaries: np.ndarray) -> np.ndarray:
        """True where a dataset lies outside the training distribution."""
        return self.distances(summaries) > self.cutoff


def ridged_covariance(s: np.ndarray) -> np.ndarray:
    """The covariance ``(d, d)`` of the rows of ``s`` ``(m, d)`` plus a ridge of 1e-6 times
    its mean variance (at least 1e-12 of it), so that constant directions do not make it
    singular."""
    cov = np.atleast_2d(np.cov(s, rowvar=False))  # one summary: np.cov gives a scalar
    return cov + 1e-6 * max(np.trace(cov) / len(cov), 1e-12) * np.eye(len(cov))


def summary_reference(train_summaries: np.ndarray, alpha: float = 0.05) -> SummaryReference:
    """Fit the reference to training summaries ``(num_datasets, d)``; the covariance gets a
    ridge of 1e-6 times its mean variance so that constant directions do not divide by 0."""
    s = np.asarray(train_summaries, np.float64)
    if s.ndim != 2 or s.shape[0] <= s.shape[1]:
        raise ValueError(
            f"summary_reference: need more datasets than summary dimensions, got {s.shape}"
        )
    if not 0 < alpha < 1:
        raise ValueError(f"summary_reference: alpha must lie in (0, 1), got {alpha}")
    mean = s.mean(axis=0)
    ref = SummaryReference(mean, np.linalg.inv(ridged_covariance(s)), np.inf, float(alpha))
    cutoff = float(np.quantile(ref.distances(s), 1 - alpha))
    return SummaryReference(mean, ref.precision, cutoff, float(alpha), s)


def mmd_check(
    train_summaries: np.ndarray,
    observed_summaries: np.ndarray,
    alpha: float = 0.05,
    num_null: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """``(mmd, threshold)``: MMD^2 between observed and training summaries, and the
    ``1 - alpha`` quantile of MMD^2 between random training subsets of the observed size and
    the rest (the batch is flagged when ``mmd > threshold``).

    The null draws split one random pool of training summaries (the observed size plus up
    to 2,000) whose kernel matrix is computed once (``8 (n_obs + 2000)^2`` bytes): a
    permutation test of that pool, as cheap per draw as the observed batch is small."""
    train = np.asarray(train_summaries, np.float64)
    obs = np.asarray(observed_summaries, np.float64)
    rng = np.random.default_rng(seed)
    bw = median_distance(train, obs) * np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    ref_size = min(len(train) - len(obs), 2000)
    if ref_size < 2:
        raise ValueError("mmd_check: need more training summaries than observed ones")
    pool = train[rng.permutation(len(train))[: len(obs) + ref_size]]
    null = split_mmds(kernel_matrix(pool, bw), len(obs), num_null, len(bw), rng)
    return float(mmd(obs, pool[len(obs) :], bw)), float(np.quantile(null, 1 - alpha))
