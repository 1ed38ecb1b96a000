"""The amortized Bayesian workflow on a second model: a Bernoulli GLM (logistic regression)
with 100 binary observations and a fixed design, through the same API as the GEV case
study, with no model-specific code in the library.

Two ways to state the model: ``--spec numpyro`` (one NumPyro program gives simulator and
densities) and ``--spec likelihood`` (a plain NumPy simulator plus a JAX log-likelihood and
log prior, wrapped in ``bf.LikelihoodModel``).

    python examples/amortized_workflow_glm.py [--datasets 20] [--epochs 20]
        [--spec numpyro|likelihood] [--force psis|mcmc]
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import amortized as bf

DESIGN = np.random.default_rng(0).normal(size=(100, 4))


def glm(y=None):
    beta = numpyro.sample("beta", dist.Normal(jnp.zeros(4), 1.0).to_event(1))
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 1.5))
    with numpyro.plate("obs", 100):
        numpyro.sample("y", dist.Bernoulli(logits=alpha + jnp.asarray(DESIGN) @ beta), obs=y)


def numpy_model() -> bf.LikelihoodModel:
    """The same GLM as a NumPy simulator with JAX log densities."""

    def prior():
        return {"beta": np.random.normal(size=4), "alpha": np.random.normal(0.0, 1.5, size=1)}

    def likelihood(beta, alpha):
        p = 1.0 / (1.0 + np.exp(-(alpha + DESIGN @ beta)))
        return {"y": (np.random.uniform(size=100) < p).astype(np.float64)}

    def log_prior(params):
        return -0.5 * jnp.sum(params["beta"] ** 2) - 0.5 * jnp.sum((params["alpha"] / 1.5) ** 2)

    def log_likelihood(params, data):
        logits = params["alpha"] + jnp.asarray(DESIGN, jnp.float32) @ params["beta"]
        # log sigmoid(l) for y = 1 and log sigmoid(-l) for y = 0
        return jnp.sum(data["y"] * logits - jnp.logaddexp(0.0, logits))

    return bf.LikelihoodModel(
        bf.make_simulator([prior, likelihood]),
        log_likelihood=log_likelihood,
        log_prior=log_prior,
        parameters=["beta", "alpha"],
        observed="y",
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", type=int, default=20)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument(
        "--force",
        choices=["psis", "mcmc"],
        default=None,
        help="send every dataset through PSIS (or to MCMC)",
    )
    p.add_argument("--spec", choices=["numpyro", "likelihood"], default="numpyro")
    a = p.parse_args()
    model = bf.NumPyroModel(glm, observed="y") if a.spec == "numpyro" else numpy_model()
    workflow = bf.BasicWorkflow(
        simulator=model.simulator,
        adapter=model.default_adapter(),  # y (100 binary values) as a direct condition
        inference_network=bf.networks.CouplingFlow(),
    )
    workflow.fit_online(epochs=a.epochs, num_batches_per_epoch=100, batch_size=64, seed=1)
    test = model.simulator.sample(a.datasets, seed=2)
    result = bf.AmortizedBayesianWorkflow(workflow, model, num_samples=1000, force=a.force).run(
        {"y": test["y"]}, seed=3
    )
    print(result.counts())
    print({k: round(v, 1) for k, v in result.seconds.items()})
    print(result.table().round(3).to_string())


if __name__ == "__main__":
    main()
