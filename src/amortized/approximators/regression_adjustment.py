"""Linear regression adjustment: the network learns what a linear fit leaves over.

Before training, the standardized inference variables ``z`` ``(B, dim)`` are regressed on
features ``c`` ``(B, k)`` that are fixed before training
(:func:`~amortized.approximators.core.adjustment_features`: the standardized direct
conditions, flattened, and the summary network's explicit statistics of each dataset, such
as a set's moments or a series' autocorrelations) by ridge least squares over the whole
first batch of training data (all of it for ``fit_offline``):

.. math::

    \\hat z(c) = c W + b, \\qquad s_j = \\operatorname{sd}(z_j - \\hat z_j(c)),

and the inference network sees the scaled residual ``r = (z - c W - b) / s`` in place of
``z``. It is an affine map of ``z`` for each condition, with the log Jacobian
``-sum(log s)`` (constant for each condition), so draws (``z = r s + c W + b``) and
densities stay exact; it is done per variable (``s`` is a vector), so each variable's
quantiles, median and mean map back through it one to one.

Why: where the posterior mean depends on the data about linearly (every conjugate model,
and roughly most models near the bulk of their data), the network learns only a
correction, and the linear part extrapolates to datasets in the tails of the prior
predictive, where simulations are too sparse to teach a flexible network anything (the
classical ABC regression adjustment of Beaumont, Zhang and Balding, 2002, made exact by
keeping the network for the rest). Learned summaries are not regressed on: they change
while the network trains.

**Groups.** Where some features take exactly two values in the training data (an
indicator: a multiverse's universe code, a design switch), the rows fall into groups, one
per pattern of those values, and each group gets its own coefficients and residual sd
(:func:`find_groups`): in a conjugate model the posterior mean is linear in the data within
a universe but with a slope that changes between universes, and the posterior sd changes
with them, so a pooled fit would leave a residual no easier than the target. Groups are
used only when there are 2 to :data:`MAX_GROUPS` of them and each has enough rows for its
own fit (:data:`ROWS_PER_COEFFICIENT` per coefficient); otherwise the fit is pooled. A row
whose indicator values match no pattern (a value the training data never had there)
takes the nearest pattern's map, and the approximator warns by dataset
(:func:`unmatched_message`, an ``OutOfDistributionWarning``).

The fitted map is part of the standardization statistics under :data:`KEY`, as a pair
(coefficients ``(G, k + 1, dim)``, the intercept last; residual sd ``(G, dim)``), and the
groups under :data:`GROUPS_KEY` (patterns ``(G, k)``, indicator mask ``(k,)``), so they are
saved with a model; a model saved without them loads without them, and one saved with a
single pooled fit (``(k + 1, dim)``, ``(dim,)``) loads as one group.

Example
-------
>>> import numpy as np
>>> c = np.random.default_rng(0).normal(size=(500, 2))
>>> z = c @ np.array([[1.0], [-2.0]]) + 0.1 * np.random.default_rng(1).normal(size=(500, 1))
>>> coef, scale = fit(z, c)
>>> np.round(coef[:2, 0], 1).tolist(), np.round(scale, 1).tolist()  # slopes, residual sd
([1.0, -2.0], [0.1])
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

KEY = "inference_variables|regression"
GROUPS_KEY = "inference_variables|regression_groups"
#: ridge penalty per training row, on standardized conditions: negligible against the
#: data's own curvature (each standardized column has sum of squares n) but keeps the
#: solve well posed for constant or collinear conditions
RIDGE = 1e-3
#: the smallest residual sd kept (standardized units): a variable the conditions determine
#: exactly would otherwise divide by zero
MIN_SCALE = 1e-3
#: training rows needed per coefficient of a fit (with fewer, it would explain the rows'
#: noise)
ROWS_PER_COEFFICIENT = 10
#: the most groups fitted separately: a 2 x 2 x 2 x 2 x 2 multiverse; more patterns than
#: this (many binary observations, say) are fitted pooled
MAX_GROUPS = 32


def fit(z: np.ndarray, c: np.ndarray, ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """Ridge least squares of ``z`` ``(n, dim)`` on ``c`` ``(n, k)`` with an unpenalized
    intercept: coefficients ``(k + 1, dim)`` (intercept last) and the residual sd
    ``(dim,)`` (at least :data:`MIN_SCALE`), in float64."""
    z = np.asarray(z, np.float64)
    c = np.asarray(c, np.float64)
    n, k = c.shape
    design = np.concatenate([c, np.ones((n, 1))], axis=1)
    penalty = ridge * n * np.diag(np.r_[np.ones(k), 0.0])
    coef = np.linalg.solve(design.T @ design + penalty, design.T @ z)
    scale = np.maximum((z - design @ coef).std(axis=0), MIN_SCALE)
    return coef, scale


def find_groups(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The groups of the rows of ``c`` ``(n, k)`` by their values in the columns that
    take exactly two values: ``(patterns (G, k), mask (k,), group of each row (n,))``
    (patterns zero outside the mask), or None where there are no such columns, fewer
    than 2 or more than :data:`MAX_GROUPS` groups, or a group too small for its own fit.

    >>> c = np.c_[np.repeat([0.0, 1.0], 300), np.arange(600.0)]
    >>> patterns, mask, rows = find_groups(c)
    >>> patterns.tolist(), mask.tolist(), np.bincount(rows).tolist()
    ([[0.0, 0.0], [1.0, 0.0]], [1.0, 0.0], [300, 300])
    """
    c = np.asarray(c)
    n, k = c.shape
    binary = [j for j in range(k) if np.unique(c[:, j]).size == 2]
    if not binary:
        return None
    keys, rows = np.unique(c[:, binary], axis=0, return_inverse=True)
    counts = np.bincount(rows.reshape(-1))
    if not 2 <= len(keys) <= MAX_GROUPS or counts.min() < ROWS_PER_COEFFICIENT * (k + 1):
        return None
    patterns = np.zeros((len(keys), k))
    patterns[:, binary] = keys
    mask = np.zeros(k)
    mask[binary] = 1.0
    return patterns, mask, rows.reshape(-1)


def fit_groups(z: np.ndarray, c: np.ndarray):
    """The adjustment of ``z`` ``(n, dim)`` on ``c`` ``(n, k)``: ``(coef (G, k + 1, dim),
    scale (G, dim))`` and the groups ``(patterns (G, k), mask (k,))``, one group (and
    groups None) where :func:`find_groups` finds none."""
    found = find_groups(c)
    if found is None:
        coef, scale = fit(z, c)
        return (coef[None], scale[None]), None
    patterns, mask, rows = found
    fits = [fit(z[rows == g], c[rows == g]) for g in range(len(patterns))]
    coef = np.stack([f[0] for f in fits])
    scale = np.stack([f[1] for f in fits])
    return (coef, scale), (patterns, mask)


def group_of(groups, c: jax.Array) -> jax.Array:
    """Each row's group ``(B,)``: the pattern nearest to its indicator values."""
    patterns, mask = groups
    d = jnp.sum(mask[None, None] * (c[:, None, :] - patterns[None]) ** 2, axis=-1)
    return jnp.argmin(d, axis=-1)


def unmatched_message(groups, features: np.ndarray, num_conditions: int, where: str) -> str:
    """The warning for datasets whose indicator features (``features`` ``(n, k)``; the
    first ``num_conditions`` are the direct conditions, the rest a summary network's
    explicit statistics) hold a value no training row had there ("" when all match)."""
    patterns, mask = (np.asarray(a) for a in groups)
    bad: dict[int, list[int]] = {}
    for j in np.flatnonzero(mask):
        seen = np.unique(patterns[:, j])
        tol = 1e-3 * max(float(np.ptp(seen)), 1e-6)
        off = np.min(np.abs(features[:, j, None] - seen[None]), axis=1) > tol
        for i in np.flatnonzero(off):
            bad.setdefault(int(i), []).append(int(j))
    if not bad:
        return ""

    def name(j: int) -> str:
        if j < num_conditions:
            return f"inference_conditions column {j}"
        return f"summary statistic {j - num_conditions}"

    first = sorted(bad)[:5]
    listed = "; ".join(f"dataset {i}: {', '.join(name(j) for j in bad[i])}" for i in first)
    more = f" (and {len(bad) - len(first)} more datasets)" if len(bad) > len(first) else ""
    return (
        f"{where}: {len(bad)} dataset(s) hold a value the training data never had where it "
        f"had only two values ({listed}{more}); the regression adjustment uses the nearest "
        f"training group's linear map there, and the network extrapolates"
    )


def affine(adjustment, groups, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each row's map ``(shift (B, dim), scale (B, dim))`` for features ``c`` ``(B, k)``:
    ``shift = c W_g + b_g``, ``scale = s_g`` with ``g`` the row's group."""
    coef, scale = adjustment
    if coef.ndim == 2:  # a pooled fit saved before groups existed
        coef, scale = coef[None], scale[None]
    g = jnp.zeros(c.shape[0], jnp.int32) if groups is None else group_of(groups, c)
    w = coef[g]  # (B, k + 1, dim)
    shift = jnp.einsum("bk,bkd->bd", c, w[:, :-1]) + w[:, -1]
    return shift, scale[g]


def to_residual(row_map, z: jax.Array) -> jax.Array:
    """``(z - shift) / scale`` for ``z`` ``(B, dim)`` and each row's map (:func:`affine`)."""
    shift, scale = row_map
    return (z - shift) / scale


def from_residual(row_map, r: jax.Array) -> jax.Array:
    """The inverse of :func:`to_residual`."""
    shift, scale = row_map
    return r * scale + shift


def log_det(row_map) -> jax.Array:
    """log |d to_residual / dz| of each row, ``(B,)``: ``-sum(log scale)``."""
    return -jnp.sum(jnp.log(row_map[1]), axis=-1)
