"""ECDF of fractional ranks with simultaneous confidence bands, and the gamma statistic.

Säilynoja, Bürkner and Vehtari (2022), "Graphical test for discrete uniformity and its
applications in goodness-of-fit evaluation and multiple sample comparison", Statistics and
Computing 32:32.

For ``N`` ranks and evaluation points ``z_i = i / K`` (``i = 1..K-1``), the ECDF count
``N_i = #{r <= z_i}`` is ``Binomial(N, z_i)`` under uniformity. The statistic

    gamma = 2 min_i min( F_i(N_i), 1 - F_i(N_i - 1) ),   F_i = Binomial(N, z_i) CDF,

is the smallest two-sided pointwise tail probability along the ECDF. The ECDF lies inside the
simultaneous ``1 - alpha`` band exactly when ``gamma > gamma_alpha``, the ``alpha`` quantile
of ``gamma`` under uniformity. ``gamma_alpha`` comes from

- ``method="exact"``: bisection on ``P(gamma > g) = 1 - alpha``, where ``P`` is computed by a
  forward recursion over the evaluation points (given ``N_{i-1}``, the increment is
  ``Binomial(N - N_{i-1}, (z_i - z_{i-1}) / (1 - z_{i-1}))``); deterministic;
- ``method="simulation"``: the ``alpha`` quantile over ``num_simulations`` uniform samples.

``log_gamma = log(gamma) - log(gamma_alpha)`` (Modrák et al. 2023): ``>= 0`` passes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from .._validation import check_choice, check_positive_int
from ._arrays import Metric
from .sbc import sbc_ranks

DEFAULT_MAX_POINTS = 200


@dataclass(frozen=True)
class EcdfBands:
    """Simultaneous band for the ECDF of ``num_ranks`` uniform values at points ``z (K-1,)``:
    ``lower``/``upper`` are ECDF values (fractions); ``gamma`` is the adjusted pointwise
    level (``gamma_alpha``)."""

    z: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    gamma: float
    alpha: float
    num_ranks: int


def _grid(num_points: int) -> np.ndarray:
    return np.arange(1, num_points) / num_points


def _default_points(num_ranks: int) -> int:
    return int(min(num_ranks, DEFAULT_MAX_POINTS))


def gamma_statistic(fractional: np.ndarray, num_points: int | None = None) -> np.ndarray:
    """gamma per column of ``fractional (num_ranks, dim)`` (values in ``(0, 1)``)."""
    r = np.asarray(fractional, np.float64)
    n = r.shape[0]
    k = num_points or _default_points(n)
    z = _grid(k)
    counts = np.sum(r[None, :, :] <= z[:, None, None], axis=1)  # (K-1, dim)
    zc = z[:, None]
    lower_tail = stats.binom.cdf(counts, n, zc)
    upper_tail = stats.binom.sf(counts - 1, n, zc)
    return 2.0 * np.min(np.minimum(lower_tail, upper_tail), axis=0)


def _pointwise(n: int, z: np.ndarray) -> np.ndarray:
    """``2 min(F(c), 1 - F(c - 1))`` for every count ``c = 0..n`` at every z: ``(K-1, n+1)``."""
    c = np.arange(n + 1)
    cdf = stats.binom.cdf(c[None, :], n, z[:, None])
    sf = stats.binom.sf(c[None, :] - 1, n, z[:, None])
    return 2.0 * np.minimum(cdf, sf)


def _inside(score: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest count inside the pointwise band at each z."""
    ok = score > gamma
    n = score.shape[1] - 1
    return np.argmax(ok, axis=1), n - np.argmax(ok[:, ::-1], axis=1)


def _coverage_exact(n: int, z: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """P(lo_i <= N_i <= hi_i for every i) for the ECDF counts of ``n`` uniforms."""
    prev_z, prev_lo = 0.0, 0
    p = np.ones(1)  # P(count = prev_lo + j, inside so far)
    for zi, a, b in zip(z, lo, hi, strict=True):
        q = (zi - prev_z) / (1.0 - prev_z)
        src = prev_lo + np.arange(len(p))
        dst = np.arange(a, b + 1)
        step = dst[None, :] - src[:, None]
        trans = stats.binom.pmf(step, n - src[:, None], q)  # zero for negative steps
        p = p @ trans
        prev_z, prev_lo = zi, a
    return float(p.sum())


@functools.lru_cache(maxsize=64)
def _gamma_exact(n: int, num_points: int, alpha: float) -> float:
    z = _grid(num_points)
    score = _pointwise(n, z)

    def coverage(g):
        lo, hi = _inside(score, g)
        return _coverage_exact(n, z, lo, hi)

    # Bonferroni bounds the adjusted level: alpha / (K - 1) <= gamma_alpha <= alpha.
    lo_g, hi_g = np.log(alpha / max(len(z), 1)), np.log(alpha)
    if coverage(np.exp(hi_g)) >= 1 - alpha:
        return float(alpha)
    for _ in range(40):
        mid = 0.5 * (lo_g + hi_g)
        if coverage(np.exp(mid)) >= 1 - alpha:
            lo_g = mid
        else:
            hi_g = mid
    return float(np.exp(lo_g))


def _gamma_simulated(n: int, num_points: int, alpha: float, num_simulations: int, seed: int):
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=(n, num_simulations))
    return float(np.quantile(gamma_statistic(u, num_points), alpha))


def ecdf_bands(
    num_ranks: int,
    num_points: int | None = None,
    alpha: float = 0.05,
    method: str = "exact",
    num_simulations: int = 1000,
    seed: int = 0,
) -> EcdfBands:
    """Simultaneous ``1 - alpha`` band for the ECDF of ``num_ranks`` uniform values.

    ``num_points`` (default ``min(num_ranks, 200)``) sets the evaluation grid
    ``z = (1..K-1) / K``. ``method="exact"`` (default, deterministic, cached) or
    ``"simulation"`` (``num_simulations`` draws, ``seed``).

    >>> b = ecdf_bands(100, alpha=0.05)
    >>> bool(np.all(b.lower <= b.z + 1e-12)) and bool(np.all(b.z <= b.upper + 1e-12))
    True
    """
    n = check_positive_int("ecdf_bands", "num_ranks", num_ranks)
    k = check_positive_int("ecdf_bands", "num_points", num_points or _default_points(n))
    check_choice("ecdf_bands", "method", method, ["exact", "simulation"])
    if not 0 < alpha < 1:
        raise ValueError(f"ecdf_bands: alpha must lie in (0, 1), got {alpha}")
    if k < 2:
        raise ValueError(f"ecdf_bands: num_points must be at least 2, got {k}")
    if method == "exact":
        g = _gamma_exact(n, k, float(alpha))
    else:
        g = _gamma_simulated(n, k, float(alpha), num_simulations, seed)
    z = _grid(k)
    lo, hi = _inside(_pointwise(n, z), g)
    return EcdfBands(z, lo / n, hi / n, g, float(alpha), n)


def log_gamma(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
    alpha: float = 0.05,
    num_points: int | None = None,
) -> Metric:
    """``log(gamma) - log(gamma_alpha)`` per variable: ``>= 0`` when the rank ECDF stays
    inside the simultaneous ``1 - alpha`` band (calibration not rejected), negative when it
    leaves it. ``details``: ``fractional`` ranks and the ``bands``.
    """
    ranks = sbc_ranks(estimates, targets, variable_names)
    frac = ranks.details["fractional"]
    bands = ecdf_bands(frac.shape[0], num_points, alpha)
    gam = gamma_statistic(frac, len(bands.z) + 1)
    with np.errstate(divide="ignore"):
        values = np.log(gam) - np.log(bands.gamma)
    return Metric("log_gamma", values, ranks.variable_names, {"fractional": frac, "bands": bands})
