"""Neural likelihood: the JAX log likelihood equals the approximator's own log density of
each observation, and MCMC on it gives the posterior (against exact conjugate answers)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import amortized as bf

SIGMA = 1.0  # the observation noise, known


def _one_obs():
    return bf.make_simulator(
        [
            lambda: {"mu": np.random.normal(size=1)},
            lambda mu: {"y": mu + SIGMA * np.random.normal(size=1)},
        ]
    )


def _dataset_sim(n):
    return bf.make_simulator(
        [
            lambda: {"mu": np.random.normal(size=1)},
            lambda mu: {"y": mu + SIGMA * np.random.normal(size=(n, 1))},
        ]
    )


def _log_prior(p):
    return jnp.sum(-0.5 * p["mu"] ** 2 - 0.5 * jnp.log(2 * jnp.pi))


@pytest.fixture(scope="module")
def trained():
    sim = _one_obs()
    wf = bf.BasicWorkflow(simulator=sim, inference_variables="y", inference_conditions="mu")
    wf.fit_offline(sim.sample(10_000, seed=0), seed=1, progress=False)
    return wf


def test_log_likelihood_is_the_sum_of_the_approximators_log_densities(trained):
    nle = bf.approximators.NeuralLikelihood(trained, parameters=["mu"], observed="y")
    y = np.random.default_rng(0).normal(size=(7, 1)).astype(np.float32)
    mu = np.float32(0.3)
    # reference: the approximator's own (NumPy-side) log q of each row, summed
    ref = trained.log_prob({"y": y, "mu": np.full((7, 1), mu)}).sum()
    got = nle.log_likelihood({"mu": jnp.asarray([mu])}, {"y": jnp.asarray(y)})
    np.testing.assert_allclose(float(got), ref, rtol=1e-5, atol=1e-4)
    # differentiable in the parameters (NUTS needs it) and jit-compatible
    g = jax.jit(jax.grad(lambda m: nle.log_likelihood({"mu": m}, {"y": jnp.asarray(y)})))(
        jnp.asarray([mu])
    )
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.slow  # its twin: benchmarks/neural_likelihood.py (MCMC against the exact posterior)
def test_mcmc_on_the_neural_likelihood_recovers_the_conjugate_posterior(trained):
    nle = bf.approximators.NeuralLikelihood(trained, parameters=["mu"], observed="y")
    n = 10
    model = nle.model(_dataset_sim(n), _log_prior)
    data = _dataset_sim(n).sample(2, seed=5)
    post = bf.workflow.mcmc_posterior(model, {"y": data["y"]}, num_samples=1000, seed=3)
    # exact: mu | y ~ N(sum y / (n + 1), 1 / (n + 1)), sd 0.30
    exact_mean = data["y"].sum(axis=(1, 2)) / (n + 1)
    got = post.draws["mu"][:, :, 0]
    # the network's error dominates the MCMC error (ESS in the hundreds: about 0.015): a
    # network trained on 10^4 single observations has a score biased by 0.02-0.04 per
    # observation (benchmarks/LOG.md, session 22), which moves this posterior's mean by
    # about 0.1 sd; 0.3 sd allows three times that, while a likelihood with the wrong
    # noise scale or shift would miss by far
    np.testing.assert_allclose(got.mean(axis=1), exact_mean, atol=0.3 / np.sqrt(n + 1))
    np.testing.assert_allclose(got.std(axis=1), 1 / np.sqrt(n + 1), rtol=0.2)
    assert np.all(post.rhat < 1.05)


def test_mcmc_posterior_with_an_exact_likelihood():
    sim = _dataset_sim(4)
    model = bf.LikelihoodModel(
        sim,
        log_likelihood=lambda p, d: jnp.sum(-0.5 * (d["y"] - p["mu"]) ** 2),
        log_prior=_log_prior,
        parameters=["mu"],
        observed="y",
    )
    y = np.zeros((1, 4, 1)) + np.array([0.5, 1.0, 1.5, 2.0])[None, :, None]
    post = bf.workflow.mcmc_posterior(model, {"y": y}, num_samples=4000, seed=0)
    draws = post.draws["mu"][0, :, 0]
    # exact N(5 / 5, 1 / 5): the mean's Monte Carlo error with an ESS above 1000 is below
    # 0.45 / 30 = 0.015, so 0.05 is over three standard errors
    assert abs(draws.mean() - 1.0) < 0.05
    assert abs(draws.var() - 0.2) < 0.03
    with pytest.raises(TypeError, match="must have a likelihood"):
        bf.workflow.mcmc_posterior(sim, {"y": y})


def test_wrong_routes_and_inexact_densities_are_refused(trained):
    with pytest.raises(ValueError, match="routes"):
        bf.approximators.NeuralLikelihood(trained, parameters=["y"], observed="mu")
    sim = _one_obs()
    fm = bf.BasicWorkflow(
        simulator=sim,
        inference_network=bf.networks.FlowMatching(exact_divergence_max_dim=0),
        inference_variables="y",
        inference_conditions="mu",
    )
    fm.fit_offline(sim.sample(64, seed=0), epochs=1, early_stopping=False, progress=False)
    with pytest.raises(ValueError, match="exact density"):
        bf.approximators.NeuralLikelihood(fm, parameters=["mu"], observed="y")
