"""dense_rows and MLP.train_rows: the same values and reverse-mode derivatives as the plain
layer and the per-row MLP (reference: JAX's own derivative of ``W x + b`` under ``vmap``)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amortized.networks.dense import dense_rows
from amortized.networks.mlp import MLP

# float32 products of 16-32 terms of size O(1) summed in another order agree to a few ulps
# of the largest term; 1e-5 is two orders above that
RTOL, ATOL = 1e-5, 1e-5


def _close(got, ref, rtol=RTOL, atol=ATOL):
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(b, a, rtol, atol)


@pytest.mark.parametrize("bias", [True, False])
def test_values_and_gradients_match_the_plain_layer(bias):
    layer = eqx.nn.Linear(16, 8, use_bias=bias, key=jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (32, 16))
    np.testing.assert_allclose(dense_rows(layer, xs), jax.vmap(layer)(xs), RTOL, ATOL)

    def loss(apply):
        # nonlinear, so that every row's cotangent differs
        return lambda l, v: jnp.sum(jnp.tanh(apply(l, v)) ** 2)

    ref = jax.grad(loss(lambda l, v: jax.vmap(l)(v)), argnums=(0, 1))(layer, xs)
    got = jax.jit(jax.grad(loss(dense_rows), argnums=(0, 1)))(layer, xs)
    _close(got, ref)


def test_vmapped_over_datasets():
    # (datasets, rows, in): mapped over datasets the rule is batched by JAX's custom_vjp
    layer = eqx.nn.Linear(16, 8, key=jax.random.key(2))
    xs = jax.random.normal(jax.random.key(3), (4, 8, 16))

    def loss(apply):
        return lambda l: jnp.sum(jnp.cos(jax.vmap(lambda v: apply(l, v))(xs)))

    _close(jax.grad(loss(dense_rows))(layer), jax.grad(loss(lambda l, v: jax.vmap(l)(v)))(layer))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_mlp_train_rows_equals_the_per_row_training_call(dropout):
    mlp = MLP(5, 3, widths=(32, 32), dropout=dropout, key=jax.random.key(5))
    # nonzero output layer, so that gradients reach every parameter
    mlp = jax.tree.map(lambda a: a + 0.1 if eqx.is_inexact_array(a) else a, mlp)
    xs = jax.random.normal(jax.random.key(6), (16, 5))
    keys = jax.random.split(jax.random.key(7), 16)

    def per_row(m):
        return jnp.sum(jax.vmap(lambda r, k: m(r, k))(xs, keys) ** 2)

    def batch(m):
        return jnp.sum(m.train_rows(xs, keys) ** 2)

    # same dropout masks (same per-row keys), same values and parameter gradients
    np.testing.assert_allclose(batch(mlp), per_row(mlp), 1e-5)
    _close(eqx.filter_grad(batch)(mlp), eqx.filter_grad(per_row)(mlp), 1e-4, 1e-4)


def test_bad_shape_and_forward_mode():
    layer = eqx.nn.Linear(16, 8, key=jax.random.key(8))
    with pytest.raises(ValueError, match=r"rows of shape \(rows, 16\), got shape \(16,\)"):
        dense_rows(layer, jnp.ones(16))
    with pytest.raises(ValueError, match=r"got shape \(4, 3\)"):
        dense_rows(layer, jnp.ones((4, 3)))
    xs = jnp.ones((4, 16))
    # reverse mode only (documented)
    with pytest.raises(TypeError):
        jax.jvp(lambda v: dense_rows(layer, v), (xs,), (xs,))


@pytest.mark.parametrize("transform", ["affine", "spline"])
@pytest.mark.parametrize("dim", [1, 3])
def test_coupling_flow_training_loss_is_the_batch_negative_log_density(transform, dim):
    # without dropout the training loss (rows through MLP.train_rows) must equal
    # -mean(log_prob) of the per-example path, in value and in parameter gradient
    import amortized as bf

    flow = bf.networks.CouplingFlow(
        depth=2,
        transform=transform,
        subnet_kwargs={"widths": (16, 16), "dropout": 0.0},
        dim=dim,
        cond_dim=2,
        key=jax.random.key(9),
    )
    params, static = eqx.partition(flow, eqx.is_inexact_array)
    params = jax.tree.map(
        lambda a: a + 0.05 * jax.random.normal(jax.random.key(a.size), a.shape), params
    )
    x = jax.random.normal(jax.random.key(10), (24, dim))
    c = jax.random.normal(jax.random.key(11), (24, 2))

    def train(p):
        return eqx.combine(p, static).loss(x, c, jax.random.key(12))

    def evaluate(p):
        return -jnp.mean(eqx.combine(p, static).log_prob(x, c))

    # jitted: eager gradients of a flow dispatch thousands of small operations
    np.testing.assert_allclose(jax.jit(train)(params), jax.jit(evaluate)(params), 1e-5)
    _close(jax.jit(jax.grad(train))(params), jax.jit(jax.grad(evaluate))(params), 1e-4, 1e-4)
