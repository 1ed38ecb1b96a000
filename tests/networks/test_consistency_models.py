"""ConsistencyModel and StableConsistencyModel against exact answers: the discretization
schedule and the training noise proposal against their formulas (Song & Dhariwal 2023), the
boundary condition, multistep sampling with the exact consistency function of a Gaussian
target, the sCM training tangent against jax's derivative along the trajectory, training to
a conjugate posterior, and the refusals (steps past total_steps, densities, early
stopping)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import amortized as bf
from amortized.networks import ConsistencyModel, StableConsistencyModel
from amortized.networks.consistency_model import (
    CT_P_MEAN,
    CT_P_STD,
    ct_grid,
    discretization_points,
    interval_logits,
)

S = 0.3  # the Gaussian target's sd; its mean is the condition


def test_discretization_doubles_from_s0_to_s1():
    # N(k) = min(s0 2^floor(k / K'), s1) + 1 with K' = floor(K / (log2(s1 / s0) + 1)):
    # K = 600, s0 = 10, s1 = 50 gives K' = floor(600 / 3.3219) = 180
    k = jnp.array([0, 179, 180, 359, 360, 539, 540, 599])
    got = discretization_points(k, 600, 10, 50)
    np.testing.assert_array_equal(got, [11, 11, 21, 21, 41, 41, 51, 51])
    # s0 == s1: a fixed discretization
    np.testing.assert_array_equal(discretization_points(jnp.array([0, 99]), 100, 8, 8), [9, 9])


def test_training_intervals_follow_the_lognormal_proposal():
    # the grid: Karras' rho = 7 spacing between eps and T; the interval probabilities: the
    # mass of log t ~ N(-1.1, 2^2) on each interval (scipy's lognormal), renormalized over
    # the grid's points - 1 intervals and zero beyond
    eps, T, points, size = 0.001, 200.0, 11, 51
    t = np.asarray(ct_grid(jnp.int32(points), size, eps, T), np.float64)
    i = np.arange(points)
    ref = (eps ** (1 / 7) + i / (points - 1) * (T ** (1 / 7) - eps ** (1 / 7))) ** 7
    np.testing.assert_allclose(t[:points], ref, rtol=1e-5)
    logits = np.asarray(interval_logits(jnp.asarray(t, jnp.float32), jnp.int32(points)))
    mass = np.diff(stats.lognorm(s=CT_P_STD, scale=np.exp(CT_P_MEAN)).cdf(ref))
    np.testing.assert_allclose(np.exp(logits[: points - 1]), mass, rtol=1e-4)
    assert np.all(np.isneginf(logits[points - 1 :]))


class ExactCM(ConsistencyModel):
    """The exact consistency function of x ~ N(c, S^2) under x_t = x + t z: the
    probability-flow ODE keeps the standardized value, f = c + (x_t - c) S / sqrt(S^2 + t^2)."""

    def consistency(self, x, t, cond_in, key=None, raw_cond=False):
        return cond_in[0] + (x - cond_in[0]) * S / jnp.sqrt(S**2 + t**2)


class ExactSCM(StableConsistencyModel):
    """The same for x_t = cos(t) x + sin(t) z, z ~ N(0, sigma^2)."""

    def consistency(self, x, t, ci):
        sd = jnp.sqrt((jnp.cos(t) * S) ** 2 + (jnp.sin(t) * self.sigma) ** 2)
        return ci[0] + (x - jnp.cos(t) * ci[0]) * S / sd


@pytest.mark.parametrize(
    "net",
    [
        ExactCM(total_steps=10, sampling_steps=1),
        ExactCM(total_steps=10, sampling_steps=4),
        ExactSCM(sampling_steps=1, sigma=0.8),
        ExactSCM(sampling_steps=3),
    ],
    ids=["cm_1", "cm_4", "scm_1", "scm_3"],
)
def test_multistep_sampling_with_the_exact_function_reaches_the_target(net):
    net = net.build(1, 1, jax.random.key(0))
    c = jnp.full((20000, 1), 1.5)
    draws = np.asarray(net.sample(jax.random.key(1), c))[:, 0]
    # 20000 draws of N(1.5, 0.3^2): the mean's standard error is 0.0021, the sd's 0.0015;
    # 4 standard errors (a wrong renoising scale or time is off by far more). The
    # consistency model's one-step start T z has mean 0, not c: a bias of c S / T = 0.002
    assert abs(draws.mean() - 1.5) < 0.0085
    assert abs(draws.std() - S) < 0.006


@pytest.mark.parametrize("kind", ["cm", "scm"])
def test_the_map_is_the_identity_at_the_data_end(kind):
    x = jax.random.normal(jax.random.key(1), (3,))
    c = jax.random.normal(jax.random.key(2), (2,))
    if kind == "cm":
        net = ConsistencyModel(total_steps=10, subnet_kwargs={"widths": [8]})
        net = net.build(3, 2, jax.random.key(0))
        out = net.consistency(x, jnp.float32(net.eps), c, raw_cond=True)
    else:
        net = StableConsistencyModel(subnet_kwargs={"widths": [8]}).build(3, 2, jax.random.key(0))
        out = net.consistency(x, jnp.float32(0.0), c)
    np.testing.assert_allclose(out, x, rtol=1e-6)


def test_scm_tangent_is_the_time_derivative_along_the_trajectory():
    # g = cos(t) d/dt f^-(x_t(t), t) with x_t(t) = cos(t) x + sin(t) z: the closed form
    # with one forward-mode product against jax's derivative of the composed map
    net = StableConsistencyModel(subnet_kwargs={"widths": [16, 16]}, sigma=0.7)
    net = net.build(3, 2, jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(keys[0], (4, 3))
    z = 0.7 * jax.random.normal(keys[1], (4, 3))
    c = jax.random.normal(keys[2], (4, 2))
    t = jnp.array([0.1, 0.5, 1.0, 1.4])
    _, _, g = net.tangent(x, z, t, c, None)

    def f_along(ti, xi, zi, ci):
        xt = jnp.cos(ti) * xi + jnp.sin(ti) * zi
        return jnp.cos(ti) * xt - jnp.sin(ti) * 0.7 * net._F(xt / 0.7, ti, ci)

    ref = jax.vmap(lambda ti, *a: jnp.cos(ti) * jax.jacfwd(f_along)(ti, *a))(t, x, z, c)
    # float32: both are a handful of products of O(1) values
    np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-5)


def _conjugate_workflow(net):
    # theta ~ N(0, 1), x | theta ~ N(theta, 0.5^2): posterior N(0.8 x, 0.2)
    def prior():
        return {"theta": np.random.normal(size=1)}

    def likelihood(theta):
        return {"x": theta + 0.5 * np.random.normal(size=1)}

    return bf.BasicWorkflow(
        simulator=bf.make_simulator([prior, likelihood]),
        inference_variables="theta",
        inference_conditions="x",
        inference_network=net,
    )


@pytest.mark.parametrize("kind", ["cm", "scm"])
def test_trains_to_the_conjugate_posterior(kind, tmp_path):
    epochs, n, batch = 30, 4096, 64
    net = (
        ConsistencyModel(total_steps=epochs * n // batch, subnet_kwargs={"widths": [64, 64]})
        if kind == "cm"
        else StableConsistencyModel(subnet_kwargs={"widths": [64, 64]})
    )
    wf = _conjugate_workflow(net)
    # no early stopping by default: a consistency loss does not rank posteriors
    history = wf.fit_offline(
        wf.simulate(n, seed=0), epochs=epochs, batch_size=batch, seed=1, progress=False
    )
    assert len(history["loss"]) == epochs and history["steps"][-1] == epochs * n // batch
    xs = np.array([[-1.0], [0.0], [1.5]], np.float32)
    draws = wf.sample(conditions={"x": xs}, num_samples=2000, seed=2)["theta"][..., 0]
    # a small network after 30 epochs: means within 0.1 (a quarter of the posterior sd
    # 0.447) and sd within 20%; a map that ignores the condition or collapses is off by
    # far more (seen while building: means near 0, or sds of 0.6)
    np.testing.assert_allclose(draws.mean(1), 0.8 * xs[:, 0], atol=0.1)
    np.testing.assert_allclose(draws.std(1), np.sqrt(0.2), rtol=0.2)
    with pytest.raises(NotImplementedError, match="has no density"):
        wf.log_prob({"theta": xs, "x": xs})
    wf.save(tmp_path / "cm.amz")
    again = bf.load(tmp_path / "cm.amz").sample(conditions={"x": xs}, num_samples=2000, seed=2)
    np.testing.assert_array_equal(again["theta"][..., 0], draws)


def test_training_past_total_steps_is_refused_before_it_starts():
    wf = _conjugate_workflow(ConsistencyModel(total_steps=40, subnet_kwargs={"widths": [8]}))
    data = wf.simulate(256, seed=0)
    # 256 / 32 = 8 steps per epoch: 5 epochs reach 40, a sixth would pass it
    wf.fit_offline(data, epochs=5, batch_size=32, seed=1, progress=False)
    with pytest.raises(ValueError, match=r"total_steps=40.*optimizer step 48.*total_steps=48"):
        wf.fit_offline(data, epochs=1, batch_size=32, seed=1, progress=False)


def test_epoch_ranking_is_refused_for_consistency_losses():
    wf = _conjugate_workflow(StableConsistencyModel(subnet_kwargs={"widths": [8]}))
    data = wf.simulate(64, seed=0)
    with pytest.raises(ValueError, match="early stopping.*does not rank posteriors"):
        wf.fit_offline(data, epochs=1, batch_size=32, early_stopping=True, progress=False)
    with pytest.raises(ValueError, match="restore_best.*does not rank posteriors"):
        wf.fit_offline(data, epochs=1, batch_size=32, restore_best=True, progress=False)


def test_bad_options_are_named():
    with pytest.raises(TypeError, match="total_steps"):
        ConsistencyModel()
    with pytest.raises(ValueError, match="s1 .* must be >= s0"):
        ConsistencyModel(total_steps=10, s0=20, s1=10)
    with pytest.raises(ValueError, match="0 < eps < max_time"):
        ConsistencyModel(total_steps=10, eps=0.0)
    with pytest.raises(TypeError, match=r"weight_mlp_kwargs.*\['depth'\].*widths"):
        StableConsistencyModel(weight_mlp_kwargs={"depth": 2})
    with pytest.raises(ValueError, match="sampling_steps must be a positive integer"):
        StableConsistencyModel(sampling_steps=0)
    with pytest.raises(ValueError, match="needs total_steps"):
        bf.BasicWorkflow(inference_network="consistency_model", inference_variables="theta")
    with pytest.raises(ValueError, match="needs the optimizer step"):
        net = ConsistencyModel(total_steps=10, subnet_kwargs={"widths": [8]})
        net.build(1, 1, jax.random.key(0)).loss(
            jnp.zeros((2, 1)), jnp.zeros((2, 1)), jax.random.key(0)
        )
