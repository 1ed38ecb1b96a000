"""A dense layer applied to a batch of rows, ``X W^T + b``, whose weight gradient runs as a
fast matrix product on CPU.

JAX's own derivative of ``X W^T + b`` makes the weight gradient ``dL/dW = G^T X`` (``G`` the
output cotangents ``(rows, out)``, ``X`` the inputs ``(rows, in)``): a product contracting
the leading axis of both operands. XLA's CPU backend does not hand that form to its fast
matrix kernels (YNNPACK) and runs it through a generic loop, markedly slower than the other
products of the same size (the profile is in BENCHMARKS.md's log). XLA folds an ordinary
transpose back into the product, so the form cannot be changed from outside.

:func:`dense_rows` gives the same values with a reverse-mode rule (``custom_vjp``) that
materializes ``G^T`` behind an optimization barrier and multiplies ``(G^T) X``, a plain
product XLA runs through the fast kernels (the measured gain is in BENCHMARKS.md's log).
Reverse mode only: ``jax.grad`` and
``jax.vjp`` work, ``jax.jvp`` and ``jax.jacfwd`` raise, so networks use it in their
training losses and the plain layer everywhere else (sampling, densities, forward-mode
divergences). It is meant for a whole batch at once; mapped over single rows with ``vmap``
it stays correct but forms one outer product per row.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp


@jax.custom_vjp
def _rows(weight: jax.Array, bias: jax.Array, xs: jax.Array) -> jax.Array:
    return xs @ weight.T + bias[None, :]


def _rows_fwd(weight, bias, xs):
    return _rows(weight, bias, xs), (weight, xs)


def _rows_bwd(res, g):
    weight, xs = res
    # the barrier keeps XLA from folding the transpose back into a product over the
    # leading axes (see the module docstring)
    g_t = jax.lax.optimization_barrier(g.T)
    return g_t @ xs, jnp.sum(g, axis=0), g @ weight


_rows.defvjp(_rows_fwd, _rows_bwd)


def dense_rows(layer: eqx.nn.Linear, xs: jax.Array) -> jax.Array:
    """``layer`` applied to each row of ``xs`` ``(rows, in)`` -> ``(rows, out)``, the same
    values as ``jax.vmap(layer)(xs)``; reverse-mode derivatives only (module docstring).

    Example::

        lin = eqx.nn.Linear(3, 4, key=jax.random.key(0))
        xs = jnp.ones((8, 3))
        grads = jax.grad(lambda l: dense_rows(l, xs).sum())(lin)
    """
    if xs.ndim != 2 or xs.shape[1] != layer.in_features:
        raise ValueError(
            f"dense_rows: expects rows of shape (rows, {layer.in_features}), got shape {xs.shape}"
        )
    bias = layer.bias if layer.bias is not None else jnp.zeros(layer.out_features, xs.dtype)
    return _rows(layer.weight, bias, xs)
