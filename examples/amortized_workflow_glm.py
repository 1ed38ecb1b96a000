"""The amortized Bayesian workflow on a second model: a Bernoulli GLM (logistic regression)
with 100 binary observations and a fixed design, through the same API as the GEV case
study, with no model-specific code in the library.

    python examples/amortized_workflow_glm.py [--datasets 20] [--epochs 20] [--force psis]
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
    a = p.parse_args()
    model = bf.NumPyroModel(glm, observed="y")
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
