"""Code written for BayesFlow, run unchanged after ``import amortized as bf``.

1. A varying-N model the BayesFlow way: a ``meta_fn`` draws the number of observations for
   each batch of simulations, and the adapter names the set (and sqrt(N) as a direct
   condition, so the posterior width can follow N) but no mask. Online training pads each
   batch and routes the padding mask to the summary network by itself.
2. Diagnostics by BayesFlow's names: ``bf.diagnostics.metrics.*`` return
   ``{"values", "metric_name", "variable_names"}``; ``bf.diagnostics.plots.*`` return
   figures.
3. A NumPyro model passed as the simulator: ``BasicWorkflow(simulator=model)``.

The normal-mean model has an exact posterior, mu | x ~ N(sum(x) / (N + 1), 1 / (N + 1)), so
the script prints how far the amortized posterior is from it at N = 5 and N = 50.

    python examples/bayesflow_style.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpyro
import numpyro.distributions as dist

import amortized as bf


def prior():
    return dict(mu=np.random.normal(size=1))


def likelihood(mu, N):
    return dict(x=np.random.normal(mu, 1.0, size=(N, 1)))


def meta():
    return dict(N=np.random.randint(5, 51))


def numpyro_model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    with numpyro.plate("n", 10):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def exact_posterior(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of mu | x for the N(0, 1) prior and unit-variance observations."""
    n = x.shape[1]
    return x.sum(axis=(1, 2)) / (n + 1), np.full(x.shape[0], 1.0 / np.sqrt(n + 1))


def run(epochs: int = 30, num_batches_per_epoch: int = 100, out: str | None = None) -> dict:
    simulator = bf.make_simulator([prior, likelihood], meta_fn=meta)
    adapter = (
        bf.Adapter()
        .convert_dtype("float64", "float32")
        .rename("mu", "inference_variables")
        .rename("x", "summary_variables")
        .sqrt("N")
        .rename("N", "inference_conditions")
    )
    workflow = bf.BasicWorkflow(
        simulator=simulator,
        adapter=adapter,
        inference_network=bf.networks.CouplingFlow(),
        summary_network=bf.networks.DeepSet(summary_dim=8),
    )
    history = workflow.fit_online(
        epochs=epochs,
        num_batches_per_epoch=num_batches_per_epoch,
        batch_size=32,
        validation_data=256,
        seed=0,
        progress=False,
    )

    # held-out simulations at two fixed sizes, against the exact posterior
    errors = {}
    for n in (5, 50):
        test = simulator.sample(200, seed=n, N=n)
        conditions = {"x": test["x"], "N": np.full((200, 1), n)}
        draws = workflow.sample(conditions=conditions, num_samples=500, seed=1)
        mean, sd = exact_posterior(test["x"])
        errors[n] = {
            "mean_error_in_sd": float(np.mean(np.abs(draws["mu"][..., 0].mean(1) - mean) / sd)),
            "sd_ratio": float(np.mean(draws["mu"][..., 0].std(1) / sd)),
        }
        metrics = bf.diagnostics.metrics
        for fn in (
            metrics.root_mean_squared_error,
            metrics.calibration_error,
            metrics.posterior_contraction,
            metrics.posterior_z_score,
            metrics.calibration_log_gamma,
        ):
            result = fn(estimates=draws, targets={"mu": test["mu"]}, variable_keys=["mu"])
            errors[n][result["metric_name"]] = float(result["values"][0])

    plots = bf.diagnostics.plots
    test = simulator.sample(100, seed=7, N=20)
    conditions = {"x": test["x"], "N": np.full((100, 1), 20)}
    draws = workflow.sample(conditions=conditions, num_samples=500, seed=2)
    figures = {
        "loss": plots.loss(history),
        "recovery": plots.recovery(estimates=draws, targets=test, variable_keys=["mu"]),
        "calibration_ecdf": plots.calibration_ecdf(draws, test, variable_keys=["mu"]),
        "calibration_histogram": plots.calibration_histogram(draws, test, variable_keys=["mu"]),
        "coverage": plots.coverage(draws, test, variable_keys=["mu"]),
        "z_score_contraction": plots.z_score_contraction(draws, test, variable_keys=["mu"]),
        "pairs_posterior": plots.pairs_posterior(draws, test, dataset_id=0),
        "pairs_samples": plots.pairs_samples(simulator.sample(500, seed=3), variable_keys="mu"),
    }
    null = bf.diagnostics.metrics.bootstrap_comparison(
        test["x"][:20, :, 0], simulator.sample(200, seed=4, N=20)["x"][..., 0], seed=5
    )
    figures["mmd_hypothesis_test"] = plots.mmd_hypothesis_test(null[1], null[0])

    # a NumPyro model as the simulator: its prior predictive and default adapter
    model = bf.NumPyroModel(numpyro_model, observed="y")
    numpyro_workflow = bf.BasicWorkflow(simulator=model)
    numpyro_workflow.fit_offline(
        model.sample(2000, seed=0), epochs=max(2, epochs // 3), batch_size=64, seed=1,
        progress=False,
    )  # fmt: skip
    y = model.sample(50, seed=9)
    post = numpyro_workflow.sample(conditions={"y": y["y"]}, num_samples=500, seed=2)["mu"]
    exact_mean = y["y"].sum(axis=1) / 11
    errors["numpyro_mean_error_in_sd"] = float(
        np.mean(np.abs(post[..., 0].mean(1) - exact_mean) * np.sqrt(11))
    )

    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        for name, fig in figures.items():
            fig.savefig(Path(out) / f"{name}.png", dpi=80)
    return {"errors": errors, "figures": sorted(figures)}


if __name__ == "__main__":
    result = run(out="bayesflow-style-figures")
    for key, value in result["errors"].items():
        print(key, value)
