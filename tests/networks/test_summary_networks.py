"""Summary networks: permutation and padding invariance, gradients, serialization, compilation."""

import io

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import amortized as bf
from amortized.networks import (
    ConvolutionalNetwork,
    DeepSet,
    SetTransformer,
    TimeSeriesNetwork,
    TimeSeriesTransformer,
)

SMALL = {
    "deep_set": DeepSet(summary_dim=4, widths_equivariant=[16], widths_invariant=[16]),
    "set_transformer": SetTransformer(
        summary_dim=4, embed_dims=[16], num_heads=[2], mlp_widths=[16], self_attention=True
    ),
    "set_transformer_isab": SetTransformer(
        summary_dim=4,
        embed_dims=[16, 16],
        num_heads=[2, 2],
        mlp_widths=[16],
        num_inducing_points=4,
        num_seeds=2,
    ),
    # the default: rows one by one (rFF), then pooling
    "set_transformer_rff": SetTransformer(
        summary_dim=4, embed_dims=[16, 16], num_heads=[2, 2], mlp_widths=[16]
    ),
    "time_series_transformer": TimeSeriesTransformer(
        summary_dim=4, embed_dims=[16], num_heads=[2], mlp_widths=[16], time_embed_dim=8
    ),
    "time_series_network": TimeSeriesNetwork(summary_dim=4, filters=[8], recurrent_dim=8),
    "time_series_network_uni": TimeSeriesNetwork(
        summary_dim=4, filters=[8, 8], recurrent_dim=8, bidirectional=False
    ),
    "time_series_network_window": TimeSeriesNetwork(
        summary_dim=4, filters=[8], recurrent_dim=8, recurrent_window=3
    ),
    "time_series_network_no_recurrence": TimeSeriesNetwork(
        summary_dim=4, filters=[8, 8], recurrent_dim=0
    ),
    # summary_dim 47 > the 46 explicit statistics of 3 features: they pass through unmixed
    "time_series_network_passthrough": TimeSeriesNetwork(
        summary_dim=47, filters=[8], recurrent_dim=8
    ),
}
SERIES = [
    "time_series_transformer",
    "time_series_network",
    "time_series_network_uni",
    "time_series_network_window",
    "time_series_network_no_recurrence",
    "time_series_network_passthrough",
]
SETS = [k for k in SMALL if k not in SERIES]


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


@pytest.mark.parametrize("name", SETS)
def test_set_summaries_know_the_number_of_observed_rows(name):
    """The first summary number is log N of the observed rows, exactly (padding excluded),
    and the learned numbers see it too: the same rows repeated twice (same mean and
    maximum) summarize differently from the rows once."""
    net, x = built(name), data(7)
    padded = jnp.concatenate([x, jnp.zeros((5, 3))])
    for n in (1, 4, 7):
        mask = (jnp.arange(12) < n).astype(jnp.float32)
        # log of a small integer in float32: exact to rounding
        np.testing.assert_allclose(net(padded, mask=mask)[0], np.log(n), rtol=1e-6)
    once, twice = net(x), net(jnp.concatenate([x, x]))
    np.testing.assert_allclose(twice[0] - once[0], np.log(2.0), rtol=1e-6)
    # a DeepSet's pools (mean and max) are equal for x and [x, x]: any difference in the
    # learned numbers comes from log N reaching the head
    assert np.max(np.abs(np.asarray(twice[1:] - once[1:]))) > 1e-4
    with pytest.raises(ValueError, match="summary_dim must be at least 2"):
        type(SMALL[name])(summary_dim=1)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_time_series_transformer_is_order_sensitive_and_shapes(name):
    net, x = built(name), data()
    assert net(x).shape == (SMALL[name].summary_dim,)
    if name in SERIES:
        assert not np.allclose(net(x[::-1]), net(x), atol=1e-4)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_gradients_reach_every_parameter(name):
    net, x = built(name), data()
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def loss(p):
        return jnp.sum(eqx.combine(p, static)(x, key=jax.random.key(3)) ** 2)

    # jitted: an eager gradient of attention blocks dispatches thousands of small operations
    flat, _ = jax.tree_util.tree_flatten_with_path(jax.jit(jax.grad(loss))(params))
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
    with pytest.raises(ValueError, match="num_inducing_points.*self_attention"):
        SetTransformer(num_inducing_points=8, self_attention=False)
    with pytest.raises(ValueError, match="self_attention must be one of"):
        SetTransformer(self_attention="no")
    with pytest.raises(ValueError, match=r"\(batch, N, features\).*as_set"):
        DeepSet().build((10,), jax.random.key(0))
    with pytest.raises(TypeError, match="must be a summary network"):
        bf.ContinuousApproximator(
            inference_network=bf.networks.CouplingFlow(), summary_network=object()
        )


@pytest.mark.parametrize("name", ["time_series_network", "time_series_network_window"])
def test_time_series_network_ignores_leading_padding_too(name):
    # zeroed padded steps look like the convolutions' zero border, the GRUs skip them, and
    # recurrent windows start at the first observed step (4 leading pads: not a multiple of
    # the window of 3)
    net, x = built(name), data(8)
    padded = jnp.concatenate([50.0 * jnp.ones((4, 3)), x])
    mask = jnp.concatenate([jnp.zeros(4), jnp.ones(8)])
    np.testing.assert_allclose(net(padded, mask=mask), net(x), atol=1e-5)


def test_recurrent_windows_are_means_of_observed_steps():
    from amortized.networks.time_series_network import window_means

    h = jnp.arange(20.0).reshape(10, 2)
    mask = jnp.array([0, 0, 1, 1, 1, 1, 1, 0, 0, 0.0])
    means, observed = window_means(h, mask, 2)
    # observed steps 2..6 in windows (2, 3), (4, 5), (6): means by hand
    np.testing.assert_allclose(means[:3], [[5.0, 6.0], [9.0, 10.0], [12.0, 13.0]])
    np.testing.assert_array_equal(observed, [1, 1, 1, 0, 0])
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="recurrent_window must be a positive integer"):
            TimeSeriesNetwork(recurrent_dim=8, recurrent_window=bad)


def test_convolutional_network_on_images():
    net = ConvolutionalNetwork(summary_dim=4, widths=[8, 16], mlp_widths=[16])
    built_net = net.build((12, 12, 2), jax.random.key(0))
    img = jax.random.normal(jax.random.key(1), (12, 12, 2))
    assert built_net(img).shape == (4,)
    params, static = eqx.partition(built_net, eqx.is_inexact_array)

    def loss(p):
        return jnp.sum(eqx.combine(p, static)(img, key=jax.random.key(3)) ** 2)

    # jitted: an eager gradient of attention blocks dispatches thousands of small operations
    flat, _ = jax.tree_util.tree_flatten_with_path(jax.jit(jax.grad(loss))(params))
    dead = [jax.tree_util.keystr(p) for p, g in flat if g.size and not np.any(g != 0)]
    assert not dead, dead
    with pytest.raises(ValueError, match=r"\(height, width, channels\).*expand_dims"):
        net.build((12, 12), jax.random.key(0))
    with pytest.raises(ValueError, match="no summary_mask"):
        built_net(img, mask=jnp.ones(12))


def test_convolutional_network_in_a_workflow():
    # images of a blob whose brightness is the parameter: the CNN summary carries it
    rng = np.random.default_rng(0)
    b = rng.uniform(0, 1, size=(256, 1))
    imgs = b[:, :, None, None] * np.ones((256, 1, 8, 8)) + 0.1 * rng.normal(size=(256, 1, 8, 8))
    wf = bf.BasicWorkflow(
        inference_network=bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [16]}),
        summary_network=ConvolutionalNetwork(summary_dim=2, widths=[4], mlp_widths=[8]),
        inference_variables="b",
        summary_variables="img",
    )
    data = {"b": b, "img": np.moveaxis(imgs, 1, -1)}
    wf.fit_offline(data, epochs=2, batch_size=64, seed=1, progress=False, early_stopping=False)
    assert wf.summarize({"img": data["img"][:3]}).shape == (3, 2)
    assert wf.sample(conditions={"img": data["img"][:2]}, num_samples=5, seed=0)["b"].shape == (
        2,
        5,
        1,
    )


def test_autocorrelations_match_numpy_and_ignore_padding():
    from amortized.networks.summary_base import autocorrelations, own_scale

    rng = np.random.default_rng(3)
    y = np.zeros(60)
    for t in range(2, 60):  # an AR(2) series: clearly non-zero autocorrelations
        y[t] = 0.5 * y[t - 1] + 0.3 * y[t - 2] + rng.normal()
    x = y[:, None].astype(np.float32)
    z = (y - y.mean()) / y.std()
    ref = [np.mean(z[k:] * z[:-k]) for k in range(1, 4)]
    scaled, _, _ = own_scale(jnp.asarray(x), None)
    # float32 on 60 values: agreement to 1e-5 relative
    np.testing.assert_allclose(autocorrelations(scaled, None, 3), ref, rtol=1e-4, atol=1e-5)
    padded = np.concatenate([x, 7.0 * np.ones((20, 1), np.float32)])
    mask = jnp.concatenate([jnp.ones(60), jnp.zeros(20)])
    scaled_p, _, _ = own_scale(jnp.asarray(padded), mask)
    np.testing.assert_allclose(autocorrelations(scaled_p, mask, 3), ref, rtol=1e-4, atol=1e-5)
    # a lag beyond the series gives 0, not an error
    assert float(autocorrelations(scaled[:3], None, 5)[-1]) == 0.0
    # the log length counts observed steps only
    from amortized.networks.summary_base import log_length

    np.testing.assert_allclose(log_length(scaled, None), [np.log(60.0)], rtol=1e-6)
    np.testing.assert_allclose(log_length(scaled_p, mask), [np.log(60.0)], rtol=1e-6)


def test_time_series_network_passes_explicit_statistics_through():
    # reference: the statistics computed with NumPy; float32 on 40 values, 1e-4 relative
    rng = np.random.default_rng(4)
    y = np.cumsum(rng.normal(size=40)) + 3.0
    x = jnp.asarray(y[:, None], jnp.float32)
    net = TimeSeriesNetwork(summary_dim=14, filters=[8], recurrent_dim=8, autocorrelation_lags=2)
    net = net.build((40, 1), jax.random.key(0))
    out = np.asarray(net(x))
    sd = np.sqrt(y.var() + 1e-6)
    z = (y - y.mean()) / sd

    def regression(k):
        # the level kept: least squares of y_t on y_{t-k}, not centered, and the log of
        # its residual root mean square (the innovation scale it implies)
        b = np.sum(y[k:] * y[:-k]) / np.sum(y[:-k] ** 2)
        return [b, 0.5 * np.log(np.mean((y[k:] - b * y[:-k]) ** 2))]

    ref = [
        y.mean(),
        np.log(sd),
        # the scale about zero, the level kept
        0.5 * np.log(np.mean(y**2)),
        np.mean(z[1:] * z[:-1]),
        np.mean(z[2:] * z[:-2]),
        *regression(1),
        *regression(2),
        z[0],
        z[-1],
        np.log(40),
    ]
    assert out.shape == (14,)
    np.testing.assert_allclose(out[:12], ref, rtol=1e-4, atol=1e-5)
    # padded at both ends, the statistics are the same
    padded = jnp.concatenate([-7.0 * jnp.ones((3, 1)), x, 9.0 * jnp.ones((8, 1))])
    mask = jnp.asarray((np.arange(51) >= 3) & (np.arange(51) < 43), jnp.float32)
    np.testing.assert_allclose(np.asarray(net(padded, mask=mask))[:12], ref, rtol=1e-4, atol=1e-5)
    # with no room beside them (summary_dim <= 12), the statistics only feed the head
    small = TimeSeriesNetwork(summary_dim=12, filters=[8], recurrent_dim=8, autocorrelation_lags=2)
    small = small.build((40, 1), jax.random.key(0))
    assert small.head.out_features == 12


@pytest.mark.parametrize("cls", [SetTransformer, DeepSet])
def test_set_networks_pass_the_moments_of_the_observed_rows_through(cls):
    # reference: NumPy's mean, sd and correlation matrix of the observed rows only; float32
    # on 30 rows: 1e-4 relative (the sd carries own_scale's 1e-6 in its square)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 3)) * [1.0, 3.0, 0.2] + [2.0, -1.0, 0.5]
    x[:, 2] += 0.1 * x[:, 0]
    padded = np.concatenate([x, 50.0 * np.ones((6, 3))]).astype(np.float32)
    mask = jnp.asarray(np.arange(36) < 30, jnp.float32)
    net = cls(summary_dim=12).build((36, 3), jax.random.key(0))
    out = np.asarray(net(jnp.asarray(padded), mask=mask))
    sd = np.sqrt(x.var(axis=0) + 1e-6)
    corr = np.corrcoef(x.T)[np.triu_indices(3, 1)]
    ref = np.concatenate([[np.log(30)], x.mean(axis=0), np.log(sd), corr])
    assert out.shape == (12,)
    np.testing.assert_allclose(out[:10], ref, rtol=1e-4, atol=1e-5)
    # no room beside the 10 statistics: log N alone passes through, the rest feeds the head
    small = cls(summary_dim=10).build((36, 3), jax.random.key(0))
    assert np.asarray(small(jnp.asarray(padded), mask=mask)).shape == (10,)
    # without moments: log N and learned numbers only
    plain = cls(summary_dim=12, moments=False).build((36, 3), jax.random.key(0))
    plain_out = np.asarray(plain(jnp.asarray(padded), mask=mask))
    np.testing.assert_allclose(plain_out[0], np.log(30), rtol=1e-6)
    assert not np.allclose(plain_out[1:4], ref[1:4], atol=1e-2)
    with pytest.raises(ValueError, match="moments must be one of"):
        cls(moments="yes")


def test_set_transformer_attends_between_rows_only_when_asked():
    # the default transforms rows one by one; inducing points imply self-attention
    assert SetTransformer().config["self_attention"] is False
    assert SetTransformer(num_inducing_points=8).config["self_attention"] is True
    assert SetTransformer(self_attention=True).config["self_attention"] is True


def test_set_moments_skip_correlations_of_many_features():
    from amortized.networks.summary_base import (
        MAX_CORRELATED_FEATURES,
        num_set_moments,
        set_moments,
    )

    d = MAX_CORRELATED_FEATURES + 1
    x = jax.random.normal(jax.random.key(0), (20, d))
    explicit = set_moments(x, None, True)
    assert explicit.shape == (num_set_moments(d, True),) == (1 + 2 * d,)
    assert num_set_moments(3, True) == 10 and num_set_moments(3, False) == 1


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4])
def test_conv_same_matches_equinox_convolution(kernel_size):
    # reference: Equinox's own Conv1d with "SAME" padding; float32 sums of <= 12 products
    from amortized.networks.time_series_network import conv_same

    conv = eqx.nn.Conv1d(3, 5, kernel_size, padding="SAME", key=jax.random.key(kernel_size))
    h = jax.random.normal(jax.random.key(9), (17, 3))
    np.testing.assert_allclose(conv_same(conv, h), conv(h.T).T, rtol=1e-5, atol=1e-5)


def test_time_series_network_refuses_negative_recurrent_dim():
    with pytest.raises(ValueError, match="recurrent_dim >= 0"):
        TimeSeriesNetwork(recurrent_dim=-1)


@pytest.mark.parametrize("option", [{"bidirectional": True}, {"recurrent_window": 4}])
def test_time_series_network_refuses_gru_options_without_a_gru(option):
    # the default has no recurrent layer: its options would configure nothing
    with pytest.raises(ValueError, match=f"{next(iter(option))} configure the recurrent layer"):
        TimeSeriesNetwork(**option)
    TimeSeriesNetwork(recurrent_dim=8, **option)  # with a GRU they are taken
