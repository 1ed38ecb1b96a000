"""LikelihoodModel: a NumPy simulator with JAX log densities gives the same log densities and
unconstrained density as the equivalent NumPyro model, and bad arguments are named."""

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import stats

import amortized as bf


def prior():
    return {"mu": np.random.normal(1.0, 2.0, size=1), "sigma": np.abs(np.random.normal(size=1))}


def likelihood(mu, sigma):
    return {"y": np.random.normal(mu, sigma, size=8)}


def log_prior(p):
    # N(1, 2) and HalfNormal(1), in jax.numpy
    lp_mu = -0.5 * ((p["mu"] - 1.0) / 2.0) ** 2 - jnp.log(2.0 * jnp.sqrt(2 * jnp.pi))
    lp_sigma = -0.5 * p["sigma"] ** 2 + jnp.log(jnp.sqrt(2.0 / jnp.pi))
    return jnp.sum(lp_mu) + jnp.sum(lp_sigma)


def log_likelihood(p, d):
    z = (d["y"] - p["mu"]) / p["sigma"]
    return jnp.sum(-0.5 * z**2 - jnp.log(p["sigma"]) - 0.5 * jnp.log(2 * jnp.pi))


def numpyro_twin(y=None):
    mu = numpyro.sample("mu", dist.Normal(1.0, 2.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("n", 8):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


@pytest.fixture(scope="module")
def m():
    return bf.LikelihoodModel(
        bf.make_simulator([prior, likelihood]),
        log_likelihood=log_likelihood,
        log_prior=log_prior,
        parameters=["mu", "sigma"],
        observed="y",
        supports={"sigma": (0.0, None)},
    )


def test_log_densities_match_scipy_and_numpyro(m):
    d = m.simulator.sample(5, seed=0)
    assert m.shapes == {"mu": (1,), "sigma": (1,), "y": (8,)}
    params = {k: d[k] for k in m.latent_sites}
    mu, sigma = d["mu"][:, 0], d["sigma"][:, 0]
    ref = (
        stats.norm.logpdf(mu, 1.0, 2.0)
        + stats.halfnorm.logpdf(sigma)
        + stats.norm.logpdf(d["y"], mu[:, None], sigma[:, None]).sum(axis=1)
    )
    # float32 densities: relative 1e-5
    np.testing.assert_allclose(m.log_joint(params, {"y": d["y"]}), ref, rtol=1e-5, atol=1e-4)
    # the unconstrained density (log-Jacobian of sigma = exp(u) included) equals NumPyro's
    twin = bf.NumPyroModel(numpyro_twin, observed="y")
    u = m.to_unconstrained(params)
    np.testing.assert_allclose(np.asarray(u["sigma"]), np.log(d["sigma"]), rtol=1e-5)
    ours = m.log_joint_unconstrained(u, {"y": d["y"]})
    theirs = twin.log_joint_unconstrained(twin.to_unconstrained(params), {"y": d["y"]})
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)
    back = m.to_constrained(u)
    np.testing.assert_allclose(back["sigma"], d["sigma"], rtol=1e-5)


def test_bad_arguments_are_named():
    sim = bf.make_simulator([prior, likelihood])
    kw = dict(log_likelihood=log_likelihood, log_prior=log_prior, observed="y")
    with pytest.raises(KeyError, match=r"does not output \['tau'\]"):
        bf.LikelihoodModel(sim, parameters=["mu", "tau"], **kw)
    with pytest.raises(KeyError, match=r"supports name \['s'\]"):
        bf.LikelihoodModel(sim, parameters=["mu", "sigma"], supports={"s": (0, None)}, **kw)
    with pytest.raises(ValueError, match="lower < upper"):
        bf.LikelihoodModel(sim, parameters=["mu", "sigma"], supports={"sigma": (1, 0)}, **kw)
    with pytest.raises(TypeError, match="must be a bf.simulators.Simulator"):
        bf.LikelihoodModel(prior, parameters=["mu"], **kw)
    with pytest.raises(TypeError, match=r"unknown keyword.*\['prior'\]"):
        bf.LikelihoodModel(sim, parameters=["mu"], prior=log_prior, **kw)
    m = bf.LikelihoodModel(sim, parameters=["mu", "sigma"], **kw)
    with pytest.raises(ValueError, match=r"data\['y'\] has shape \(3, 5\); expected"):
        m.check_data({"y": np.zeros((3, 5))}, "run")
