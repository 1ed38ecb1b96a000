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
``z``. It is an affine map of ``z`` for each condition, with the constant log Jacobian
``-sum(log s)``, so draws (``z = r s + c W + b``) and densities stay exact; it is done
per variable (``s`` is a vector), so each variable's quantiles, median and mean map back
through it one to one.

Why: where the posterior mean depends on the data about linearly (every conjugate model,
and roughly most models near the bulk of their data), the network learns only a
correction, and the linear part extrapolates to datasets in the tails of the prior
predictive, where simulations are too sparse to teach a flexible network anything (the
classical ABC regression adjustment of Beaumont, Zhang and Balding, 2002, made exact by
keeping the network for the rest). Learned summaries are not regressed on: they change
while the network trains.

The fitted map is part of the standardization statistics under :data:`KEY`, as a pair
(coefficients ``(k + 1, dim)``, the intercept last; residual sd ``(dim,)``), so it is saved
with a model and a model saved without it loads without it.

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
#: ridge penalty per training row, on standardized conditions: negligible against the
#: data's own curvature (each standardized column has sum of squares n) but keeps the
#: solve well posed for constant or collinear conditions
RIDGE = 1e-3
#: the smallest residual sd kept (standardized units): a variable the conditions determine
#: exactly would otherwise divide by zero
MIN_SCALE = 1e-3


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


def _prediction(adjustment, c: jax.Array) -> jax.Array:
    coef, _ = adjustment
    return c @ coef[:-1] + coef[-1][None]


def to_residual(adjustment, z: jax.Array, c: jax.Array) -> jax.Array:
    """``(z - c W - b) / s`` for ``z`` ``(B, dim)`` and features ``c`` ``(B, k)``."""
    return (z - _prediction(adjustment, c)) / adjustment[1][None]


def from_residual(adjustment, r: jax.Array, c: jax.Array) -> jax.Array:
    """The inverse of :func:`to_residual`."""
    return r * adjustment[1][None] + _prediction(adjustment, c)


def log_det(adjustment) -> jax.Array:
    """log |d to_residual / dz| of one draw: ``-sum(log s)``."""
    return -jnp.sum(jnp.log(adjustment[1]))
