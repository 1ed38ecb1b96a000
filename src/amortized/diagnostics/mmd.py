"""Maximum mean discrepancy between two samples (Gretton et al. 2012).

Unbiased estimate of ``MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y)`` with a sum of Gaussian
kernels ``exp(-|a - b|^2 / (2 h^2))`` at bandwidths ``h`` (default: the median pairwise
distance of the pooled sample times 0.25, 0.5, 1, 2, 4), which keeps power for both small and
large differences. About 0 when both samples come from one distribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_CHUNK = 2048


def _kernel_sum(a: np.ndarray, b: np.ndarray, bandwidths: np.ndarray, same: bool) -> float:
    total = 0.0
    for i in range(0, len(a), _CHUNK):
        d2 = np.sum((a[i : i + _CHUNK, None, :] - b[None, :, :]) ** 2, axis=-1)
        k = np.exp(-d2[None] / (2 * bandwidths[:, None, None] ** 2)).sum(axis=0)
        if same:
            rows = np.arange(i, min(i + _CHUNK, len(a)))
            k[rows - i, rows] = 0.0  # the unbiased estimate drops k(x_i, x_i)
        total += float(k.sum())
    return total


def cross_kernel_matrix(a: np.ndarray, b: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """``(n, m)``: the sum over ``bandwidths`` of the Gaussian kernels between the rows of
    ``a`` ``(n, dim)`` and of ``b`` ``(m, dim)``, computed ``_CHUNK`` rows of ``a`` at a
    time. Float64: ``8 n m`` bytes."""
    k = np.empty((len(a), len(b)))
    for i in range(0, len(a), _CHUNK):
        d2 = np.sum((a[i : i + _CHUNK, None, :] - b[None, :, :]) ** 2, axis=-1)
        k[i : i + _CHUNK] = np.exp(-d2[None] / (2 * bandwidths[:, None, None] ** 2)).sum(axis=0)
    return k


def kernel_matrix(x: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """``(n, n)``: :func:`cross_kernel_matrix` of ``x`` with itself, diagonal set to 0 (the
    unbiased estimate leaves out k(x_i, x_i)). Float64: ``8 n^2`` bytes."""
    k = cross_kernel_matrix(x, x, bandwidths)
    np.fill_diagonal(k, 0.0)
    return k


def split_mmds(k: np.ndarray, size: int, num_splits: int, num_kernels: int, rng) -> np.ndarray:
    """MMD^2 (as :func:`mmd`) between the first ``size`` rows of a random permutation of a
    pool and the rest, for ``num_splits`` permutations, from the pool's kernel matrix ``k``
    (:func:`kernel_matrix`): each split costs O(size^2) (block sums from the row sums)
    instead of a new kernel over the pool."""
    n, m = size, len(k) - size
    row, total = k.sum(axis=1), k.sum()
    out = np.empty(num_splits)
    for s in range(num_splits):
        a = rng.permutation(len(k))[:n]
        kaa = k[np.ix_(a, a)].sum()
        kab = row[a].sum() - kaa
        kbb = total - 2 * row[a].sum() + kaa
        out[s] = (kaa / (n * (n - 1)) + kbb / (m * (m - 1)) - 2 * kab / (n * m)) / num_kernels
    return out


def median_distance(x: np.ndarray, y: np.ndarray, max_points: int = 1000, seed: int = 0) -> float:
    pooled = np.concatenate([x, y])
    rng = np.random.default_rng(seed)
    if len(pooled) > max_points:
        pooled = pooled[rng.choice(len(pooled), max_points, replace=False)]
    d = np.sqrt(np.sum((pooled[:, None] - pooled[None]) ** 2, axis=-1))
    return float(np.median(d[np.triu_indices(len(pooled), 1)]))


def mmd(
    x: np.ndarray,
    y: np.ndarray,
    bandwidths: Sequence[float] | None = None,
) -> float:
    """Unbiased MMD^2 between ``x (n, dim)`` and ``y (m, dim)``.

    >>> rng = np.random.default_rng(0)
    >>> abs(mmd(rng.normal(size=(300, 2)), rng.normal(size=(300, 2)))) < 0.02
    True
    >>> mmd(rng.normal(size=(300, 2)), rng.normal(1.0, size=(300, 2))) > 0.1
    True
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"mmd: expected two (n, dim) arrays with the same dim, got {x.shape} and {y.shape}"
        )
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"mmd: need at least 2 points per sample, got {len(x)} and {len(y)}")
    if bandwidths is None:
        h = median_distance(x, y)
        bw = max(h, 1e-12) * np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    else:
        bw = np.asarray(bandwidths, np.float64)
    n, m = len(x), len(y)
    kxx = _kernel_sum(x, x, bw, True) / (n * (n - 1))
    kyy = _kernel_sum(y, y, bw, True) / (m * (m - 1))
    kxy = _kernel_sum(x, y, bw, False) / (n * m)
    return (kxx + kyy - 2 * kxy) / len(bw)
