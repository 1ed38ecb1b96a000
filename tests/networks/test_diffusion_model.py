"""DiffusionModel against exact answers: with the exact denoiser of a Gaussian target
written in for the network, the probability-flow ODE must carry N(0, I) to the Gaussian the
linear ODE predicts (draws and log_prob), for both schedules and every parameterization;
the reverse SDE must reach the target's moments; the loss must measure an error in the
units of its loss_type; bad options are named."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import amortized as bf
from amortized.networks import DiffusionModel
from amortized.networks.noise_schedules import (
    SCHEDULE_DEFAULTS,
    alpha_sigma,
    log_snr,
    schedule_options,
    training_log_snr,
)

S = 0.3  # the target's sd; its mean is the condition


class ExactGaussian(DiffusionModel):
    """The network replaced by the exact output for x ~ N(c, S^2 I): E[x | z] and E[eps | z]
    of z = alpha x + sigma eps are linear in z."""

    def _out(self, zi, ci_in, lam, key=None):
        alpha, sigma = alpha_sigma(lam)
        mu = ci_in[: self.dim]
        var = alpha**2 * S**2 + sigma**2
        eps = sigma * (zi - alpha * mu) / var
        x = mu + alpha * S**2 * (zi - alpha * mu) / var
        return {
            "x": x,
            "noise": eps,
            "velocity": alpha * eps - sigma * x,
            "F": sigma * x - alpha * eps,
        }[self.prediction]


def exact(schedule, prediction, method="heun", steps=64):
    net = DiffusionModel(
        subnet_kwargs={"widths": [4]},
        noise_schedule=schedule,
        prediction_type=prediction,
        integrate_kwargs={"method": method, "steps": steps},
    ).build(2, 2, jax.random.key(0))
    return ExactGaussian(**net.config, dim=2, cond_dim=2, key=jax.random.key(0))


def pushed_gaussian(schedule, mu):
    """Mean and sd of z(0) when z(1) ~ N(0, I) follows the exact (affine) ODE:
    z_0 = m_0 + (sd_0 / sd_1) (z_1 - m_1), m_t = alpha_t mu, sd_t^2 = alpha_t^2 S^2 + sigma_t^2."""
    opts = schedule_options("test", schedule, None)
    (a0, s0), (a1, s1) = (alpha_sigma(log_snr(schedule, jnp.float32(t), opts)) for t in (0, 1))
    sd0, sd1 = np.sqrt(a0**2 * S**2 + s0**2), np.sqrt(a1**2 * S**2 + s1**2)
    return a0 * mu - sd0 / sd1 * a1 * mu, sd0 / sd1


# every parameterization once, every schedule twice (each pair compiles its own solves)
@pytest.mark.parametrize(
    ("schedule", "prediction"),
    [("edm", "F"), ("edm", "noise"), ("cosine", "velocity"), ("cosine", "x")],
)
def test_exact_denoiser_carries_noise_to_the_target(schedule, prediction):
    net = exact(schedule, prediction)
    mu = np.array([[0.5, -1.0]], np.float32)
    c = jnp.asarray(np.repeat(mu, 4000, axis=0))
    draws, logq = eqx.filter_jit(
        lambda n: (n.sample(jax.random.key(1), c), n.log_prob(c[:5] + 0.1, c[:5]))
    )(net)
    mean, sd = pushed_gaussian(schedule, mu[0])
    # 4,000 draws: the mean's standard error is sd / 63 = 0.005, the sd's 0.0035; the
    # 64-step second-order solve adds less than 1e-3 (measured against 256 steps)
    np.testing.assert_allclose(np.mean(draws, 0), mean, atol=0.02)
    np.testing.assert_allclose(np.std(draws, 0), sd, rtol=0.05)
    ref = stats.norm(mean, sd).logpdf(np.asarray(c[:5] + 0.1)).sum(-1)
    # the density integrates the same ODE backwards with its exact trace: float32 and the
    # discretization leave about 1e-3 in log q
    np.testing.assert_allclose(logq, ref, atol=1e-2)
    assert abs(sd - S) < 0.01  # the noise left in the draws is small against the target's sd


@pytest.mark.parametrize("method", ["euler_maruyama", "sea"])
def test_reverse_sde_with_the_exact_score_reaches_the_target(method):
    net = exact("edm", "F", method=method, steps=200)
    mu = np.array([[0.5, -1.0]], np.float32)
    c = jnp.asarray(np.repeat(mu, 4000, axis=0))
    draws = eqx.filter_jit(lambda n: n.sample(jax.random.key(2), c))(net)
    # SDE draws forget their start: the target is N(mu, S^2) plus sigma_min noise; standard
    # errors as above, and 200 Euler-Maruyama steps bias the sd by a few percent
    np.testing.assert_allclose(np.mean(draws, 0), mu[0], atol=0.03)
    np.testing.assert_allclose(np.std(draws, 0), S, rtol=0.08)
    assert net.log_prob_caveat is not None and "SDE" in net.log_prob_caveat


X0, DELTA = 0.7, 0.01


class OffByDelta(DiffusionModel):
    """Predicts x_hat = X0 + DELTA for data that are all X0, in its own parameterization."""

    def _out(self, zi, ci_in, lam, key=None):
        alpha, sigma = alpha_sigma(lam)
        x_hat = jnp.full_like(zi, X0 + DELTA)
        eps_hat = (zi - alpha * x_hat) / sigma
        return {"x": x_hat, "noise": eps_hat, "velocity": alpha * eps_hat - sigma * x_hat,
                "F": sigma * x_hat - alpha * eps_hat}[self.prediction]  # fmt: skip


@pytest.mark.parametrize("prediction", ["F", "noise"])
@pytest.mark.parametrize("loss_type", ["F", "velocity", "noise", "x"])
def test_loss_measures_an_x_error_in_the_loss_type_units(prediction, loss_type):
    # an error e in x_hat is e / sigma in velocity and F units, e alpha / sigma in noise units
    net = OffByDelta(
        subnet_kwargs={"widths": [4]}, prediction_type=prediction, loss_type=loss_type,
        dim=2, cond_dim=1, key=jax.random.key(0),
    )  # fmt: skip
    n, key = 256, jax.random.key(3)
    x = jnp.full((n, 2), X0)
    loss = net.loss(x, jnp.zeros((n, 1)), key, train=False)
    lam = training_log_snr("edm", jax.random.split(key, 4)[0], n, dict(net.schedule_opts))
    a, s = alpha_sigma(lam)
    unit = {"x": 1.0, "noise": a / s, "velocity": 1.0 / s, "F": 1.0 / s}[loss_type]
    expected = jnp.mean(2 * (unit * DELTA) ** 2)
    # float32: the residual is a difference of O(1) terms, good to ~1e-6 against DELTA 1e-2
    np.testing.assert_allclose(loss, expected, rtol=2e-3)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="noise_schedule must be one of.*cosine.*edm"):
        DiffusionModel(noise_schedule="linear")
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        DiffusionModel(prediction_type="score")
    with pytest.raises(ValueError, match="loss_type must be one of"):
        DiffusionModel(loss_type="l1")
    with pytest.raises(TypeError, match=r"schedule_kwargs.*\['sigma_max'\].*log_snr_max"):
        DiffusionModel(noise_schedule="cosine", schedule_kwargs={"sigma_max": 10})
    with pytest.raises(ValueError, match="noise range is empty"):
        DiffusionModel(schedule_kwargs={"sigma_min": 5.0, "sigma_max": 1.0})
    with pytest.raises(ValueError, match="adaptive.*ODE methods"):
        DiffusionModel(integrate_kwargs={"method": "euler_maruyama", "steps": "adaptive"})
    with pytest.raises(ValueError, match="guidance_scale.*drop_cond_prob > 0"):
        DiffusionModel(guidance_scale=1.0)
    with pytest.raises(ValueError, match="has none"):
        DiffusionModel(drop_cond_prob=0.1).build(2, 0, jax.random.key(0))


def test_trains_to_the_conjugate_posterior(tmp_path):
    # theta ~ N(0, 1), x | theta ~ N(theta, 0.5^2): posterior N(0.8 x, 0.2)
    def prior():
        return {"theta": np.random.normal(size=1)}

    def likelihood(theta):
        return {"x": theta + 0.5 * np.random.normal(size=1)}

    sim = bf.make_simulator([prior, likelihood])
    wf = bf.BasicWorkflow(
        simulator=sim,
        inference_variables="theta",
        inference_conditions="x",
        inference_network=DiffusionModel(subnet_kwargs={"widths": [64, 64]}),
    )
    wf.fit_offline(wf.simulate(4096, seed=0), epochs=30, batch_size=64, seed=1, progress=False)
    xs = np.array([[-1.0], [0.0], [1.5]], np.float32)
    draws = wf.sample(conditions={"x": xs}, num_samples=2000, seed=2)["theta"][..., 0]
    # a small network after 30 epochs: means within 0.1 (a quarter of the posterior sd
    # 0.447) and sd within 15%; a sampler with a wrong sign or scale is off by far more
    np.testing.assert_allclose(draws.mean(1), 0.8 * xs[:, 0], atol=0.1)
    np.testing.assert_allclose(draws.std(1), np.sqrt(0.2), rtol=0.15)
    # its log density at the posterior mean, against the exact one (log N(0; 0, 0.2) = -0.115):
    # the learned density's peak is within the sd tolerance above, about 0.15 in log q
    lq = wf.log_prob({"theta": 0.8 * xs, "x": xs})
    np.testing.assert_allclose(lq, stats.norm(0, np.sqrt(0.2)).logpdf(0.0), atol=0.2)
    # saved and loaded: the same network, options and draws
    wf.save(tmp_path / "dm.amz")
    loaded = bf.load(tmp_path / "dm.amz")
    again = loaded.sample(conditions={"x": xs}, num_samples=2000, seed=2)["theta"][..., 0]
    np.testing.assert_array_equal(again, draws)


def test_training_noise_levels_and_saved_schedule(monkeypatch):
    # the default EDM proposal is log sigma_VE ~ N(-2, 2^2) (posteriors are narrower than
    # the prior that standardizes them), clipped to [sigma_min, sigma_max]: 4,000 levels,
    # a KS test of the unclipped ones against SciPy's truncated normal (p > 1e-3 fails only
    # by chance once in 1,000) and the clipped share against the normal's mass below
    # sigma_min (1.75%; binomial sd 0.21%, so 0.01 is 4.8 sd)
    net = DiffusionModel()
    lam = np.asarray(training_log_snr("edm", jax.random.key(5), 4000, dict(net.schedule_opts)))
    log_sigma = -lam / 2
    ends = np.log([0.002, 80.0])
    inside = log_sigma[(log_sigma > ends[0] + 1e-4) & (log_sigma < ends[1] - 1e-4)]
    a, b = (ends + 2.0) / 2.0
    assert stats.kstest(inside, stats.truncnorm(a, b, -2.0, 2.0).cdf).pvalue > 1e-3
    assert abs(1 - inside.size / 4000 - stats.norm.cdf(ends[0], -2.0, 2.0)) < 0.01
    # the constants are stored resolved, so a model saved under other defaults keeps them
    saved = net.config
    monkeypatch.setitem(SCHEDULE_DEFAULTS, "edm", SCHEDULE_DEFAULTS["edm"] | {"p_mean": 0.0})
    assert dict(DiffusionModel(**saved).schedule_opts)["p_mean"] == -2.0
    assert dict(DiffusionModel().schedule_opts)["p_mean"] == 0.0
