"""Summary networks: permutation and padding invariance, gradients, serialization, compilation."""

import io

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import amortized as bf
from amortized.networks import DeepSet, SetTransformer, TimeSeriesTransformer

SMALL = {
    "deep_set": DeepSet(summary_dim=4, widths_equivariant=[16], widths_invariant=[16]),
    "set_transformer": SetTransformer(
        summary_dim=4, embed_dims=[16], num_heads=[2], mlp_widths=[16]
    ),
    "set_transformer_isab": SetTransformer(
        summary_dim=4,
        embed_dims=[16, 16],
        num_heads=[2, 2],
        mlp_widths=[16],
        num_inducing_points=4,
        num_seeds=2,
    ),
    "time_series_transformer": TimeSeriesTransformer(
        summary_dim=4, embed_dims=[16], num_heads=[2], mlp_widths=[16], time_embed_dim=8
    ),
}
SETS = [k for k in SMALL if k != "time_series_transformer"]


def built(name, features=3, seed=0):
    return SMALL[name].build((10, features), jax.random.key(seed))


def data(n=10, features=3, seed=1):
    return jax.random.normal(jax.random.key(seed), (n, features))


@pytest.mark.parametrize("name", SETS)
def test_set_summaries_are_permutation_invariant(name):
    net, x = built(name), data()
    perm = jax.random.permutation(jax.random.key(2), 10)
    # float32 sums in a different order: 1e-5 is the tolerance
    np.testing.assert_allclose(net(x[perm]), net(x), atol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_padding_with_mask_does_not_change_the_summary(name):
    net, x = built(name), data(7)
    padded = jnp.concatenate([x, 100.0 * jnp.ones((5, 3))])
    mask = jnp.concatenate([jnp.ones(7), jnp.zeros(5)])
    np.testing.assert_allclose(net(padded, mask=mask), net(x), atol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_time_series_transformer_is_order_sensitive_and_shapes(name):
    net, x = built(name), data()
    assert net(x).shape == (4,)
    if name == "time_series_transformer":
        assert not np.allclose(net(x[::-1]), net(x), atol=1e-4)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_gradients_reach_every_parameter(name):
    net, x = built(name), data()
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def loss(p):
        return jnp.sum(eqx.combine(p, static)(x, key=jax.random.key(3)) ** 2)

    flat, _ = jax.tree_util.tree_flatten_with_path(jax.grad(loss)(params))
    dead = [jax.tree_util.keystr(p) for p, g in flat if g.size and not np.any(g != 0)]
    assert not dead, dead


@pytest.mark.parametrize("name", sorted(SMALL))
def test_serialization_and_no_recompilation(name):
    net, x = built(name), data()
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, net)
    buf.seek(0)
    loaded = eqx.tree_deserialise_leaves(
        buf, type(net)(**net.config).build((10, 3), jax.random.key(9))
    )
    np.testing.assert_array_equal(loaded(x), net(x))
    traces = []

    @eqx.filter_jit
    def run(n, x):
        traces.append(1)
        return n(x)

    run(net, x)
    run(loaded, data(seed=5))
    assert len(traces) == 1


def test_time_axis_column_is_used_as_time():
    net = TimeSeriesTransformer(
        summary_dim=4, embed_dims=[16], num_heads=[2], mlp_widths=[16], time_axis=-1
    ).build((6, 2), jax.random.key(0))
    values = data(6, 1)
    t = jnp.arange(6.0)[:, None]
    a = net(jnp.concatenate([values, t], axis=1))
    b = net(jnp.concatenate([values, 2 * t], axis=1))
    assert a.shape == (4,) and not np.allclose(a, b)


def test_bad_options_and_shapes():
    with pytest.raises(TypeError, match=r"unknown keyword.*\['summary_dims'\]"):
        SetTransformer(summary_dims=3)
    with pytest.raises(ValueError, match="divisible"):
        SetTransformer(embed_dims=[10], num_heads=[4])
    with pytest.raises(ValueError, match=r"\(batch, N, features\).*as_set"):
        DeepSet().build((10,), jax.random.key(0))
    with pytest.raises(TypeError, match="must be a summary network"):
        bf.ContinuousApproximator(
            inference_network=bf.networks.CouplingFlow(), summary_network=object()
        )
