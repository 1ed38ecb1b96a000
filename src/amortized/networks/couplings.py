"""Elementwise invertible maps used inside coupling layers, for one example.

Each ``*_forward(x, params) -> (y, log|det dy/dx|)`` and
``*_inverse(y, params) -> (x, log|det dx/dy|)`` acts on a vector ``x`` of size ``d`` with
``params`` of size ``d * *_num_params(...)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

CLAMP = 1.9  # soft bound on log-scales: |s| < CLAMP keeps exp(s) within (0.15, 6.7)


def affine_num_params() -> int:
    return 2


def _affine_split(params, d):
    raw_s, t = params[:d], params[d:]
    s = (2.0 * CLAMP / jnp.pi) * jnp.arctan(raw_s / CLAMP)
    return s, t


def affine_forward(x, params):
    """y = x exp(s) + t, with s softly clamped; logdet = sum(s)."""
    s, t = _affine_split(params, x.shape[-1])
    return x * jnp.exp(s) + t, jnp.sum(s)


def affine_inverse(y, params):
    s, t = _affine_split(params, y.shape[-1])
    return (y - t) * jnp.exp(-s), -jnp.sum(s)


# -- rational-quadratic splines (Durkan et al. 2019), identity outside [-bound, bound] ------
MIN_BIN = 1e-3
MIN_DERIV = 1e-3


def spline_num_params(bins: int) -> int:
    return 3 * bins - 1


def _softplus(u):
    # jax.nn.softplus (logaddexp) costs several times this form on CPU; same values
    return jnp.maximum(u, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(u)))


def _knot_positions(sizes, bound):
    """Knots ``-bound, -bound + cumsum(sizes)`` along the last axis; the running sum as a
    product with a triangular matrix, which XLA's CPU backend runs faster than a scan. Full
    float32 precision: an accelerator's default (TF32) product would move the last knot off
    ``bound``, where the spline meets the identity tails."""
    n = sizes.shape[-1]
    upper = jnp.triu(jnp.ones((n, n), sizes.dtype))
    start = jnp.full(sizes.shape[:-1] + (1,), -bound, sizes.dtype)
    total = jnp.matmul(sizes, upper, precision=jax.lax.Precision.HIGHEST)
    return jnp.concatenate([start, -bound + total], axis=-1)


def _spline_knots(params, d, bins, bound):
    p = params.reshape(d, 3 * bins - 1)
    uw, uh, ud = p[:, :bins], p[:, bins : 2 * bins], p[:, 2 * bins :]
    w = MIN_BIN + (1.0 - MIN_BIN * bins) * jax.nn.softmax(uw, axis=-1)
    h = MIN_BIN + (1.0 - MIN_BIN * bins) * jax.nn.softmax(uh, axis=-1)
    xk = _knot_positions(2.0 * bound * w, bound)
    yk = _knot_positions(2.0 * bound * h, bound)
    # softplus(0) + c = 1 at init, matching the linear tails' slope of 1 at the boundary
    inner = MIN_DERIV + _softplus(ud + jnp.log(jnp.expm1(1.0 - MIN_DERIV)))
    ones = jnp.ones((d, 1))
    deriv = jnp.concatenate([ones, inner, ones], axis=-1)
    return xk, yk, deriv


def _gather(a, k):
    return jnp.take_along_axis(a, k[:, None], axis=-1)[:, 0]


def _bin(v, params, bins, bound, inverse):
    """The bin of each element of ``v`` (searched on the y-knots when ``inverse``) and that
    bin's left knot, width, height and end derivatives."""
    xk, yk, deriv = _spline_knots(params, v.shape[-1], bins, bound)
    inside = jnp.abs(v) < bound
    vc = jnp.clip(v, -bound, bound)
    knots = yk if inverse else xk
    k = jnp.clip(jnp.sum(vc[:, None] >= knots[:, 1:-1], axis=-1), 0, bins - 1)
    x0, y0 = _gather(xk, k), _gather(yk, k)
    w, h = _gather(xk, k + 1) - x0, _gather(yk, k + 1) - y0
    return inside, vc, x0, y0, w, h, _gather(deriv, k), _gather(deriv, k + 1)


def _log_slope(inside, xi, s, d0, d1):
    """``sum log dy/dx`` of the spline at bin position ``xi`` (0 outside the bound)."""
    om = xi * (1.0 - xi)
    den = s + (d1 + d0 - 2.0 * s) * om
    dydx = s**2 * (d1 * xi**2 + 2.0 * s * om + d0 * (1.0 - xi) ** 2) / den**2
    return jnp.sum(jnp.where(inside, jnp.log(dydx), 0.0))


def spline_forward(x, params, bins=16, bound=5.0):
    inside, xc, x0, y0, w, h, d0, d1 = _bin(x, params, bins, bound, inverse=False)
    s = h / w
    xi = (xc - x0) / w
    om = xi * (1.0 - xi)
    y = y0 + h * (s * xi**2 + d0 * om) / (s + (d1 + d0 - 2.0 * s) * om)
    return jnp.where(inside, y, x), _log_slope(inside, xi, s, d0, d1)


def spline_inverse(y, params, bins=16, bound=5.0):
    inside, yc, x0, y0, w, h, d0, d1 = _bin(y, params, bins, bound, inverse=True)
    s = h / w
    dy = yc - y0
    c2 = d1 + d0 - 2.0 * s
    a = h * (s - d0) + dy * c2
    b = h * d0 - dy * c2
    c = -s * dy
    disc = jnp.maximum(b**2 - 4.0 * a * c, 0.0)
    xi = (2.0 * c) / (-b - jnp.sqrt(disc))
    x = x0 + xi * w
    # log dx/dy = -log dy/dx at the solved point
    return jnp.where(inside, x, y), -_log_slope(inside, xi, s, d0, d1)
