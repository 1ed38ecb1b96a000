"""Nested R-hat (Margossian, Hoffman, Sountsov, Riou-Durand, Vehtari and Gelman 2024) for
many short chains grouped into superchains that each started from one point.

With ``K`` superchains of ``M`` subchains of ``N`` draws:
``B = Var_k(mean of superchain k)`` (unbiased over k),
``W = mean_k( Var_m(subchain means in k) + mean_m(Var_n within subchain) )``
(each variance unbiased; a term is 0 when it has a single element), and
``nR-hat = sqrt(1 + B / W)``. Near 1 when the superchains have forgotten their starting
points; the issue's acceptance is ``< 1.01``.
"""

from __future__ import annotations

import numpy as np


def nested_rhat(draws: np.ndarray) -> np.ndarray:
    """``draws (num_superchains, num_subchains, num_draws, dim)`` -> nested R-hat ``(dim,)``.

    >>> rng = np.random.default_rng(0)
    >>> float(nested_rhat(rng.normal(size=(8, 16, 50, 1)))[0]) < 1.01
    True
    """
    x = np.asarray(draws, np.float64)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(
            f"nested_rhat: draws must be (num_superchains, num_subchains, num_draws, dim), "
            f"got {x.shape}"
        )
    k, m, n, _ = x.shape
    if k < 2:
        raise ValueError(f"nested_rhat: need at least 2 superchains, got {k}")
    sub_means = x.mean(axis=2)  # (K, M, dim)
    super_means = sub_means.mean(axis=1)  # (K, dim)
    between = super_means.var(axis=0, ddof=1)
    within_sub = x.var(axis=2, ddof=1).mean(axis=1) if n > 1 else 0.0
    between_sub = sub_means.var(axis=1, ddof=1) if m > 1 else 0.0
    within = np.mean(between_sub + within_sub, axis=0)
    return np.sqrt(1.0 + between / np.where(within > 0, within, np.nan))
