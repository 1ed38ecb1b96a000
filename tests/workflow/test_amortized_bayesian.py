"""The amortized Bayesian workflow end to end on a small NumPyro model."""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import amortized as bf


def model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("n", 10):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


@pytest.fixture(scope="module")
def trained():
    m = bf.NumPyroModel(model, observed="y")
    wf = bf.BasicWorkflow(
        simulator=m.simulator,
        adapter=m.default_adapter(),
        inference_network=bf.networks.CouplingFlow(depth=3, subnet_kwargs={"widths": [32, 32]}),
    )
    wf.fit_online(epochs=8, num_batches_per_epoch=50, batch_size=64, seed=0, progress=False)
    return wf, m


def test_every_dataset_ends_in_a_step_and_psis_weights_are_checked(trained):
    wf, m = trained
    data = m.simulator.sample(6, seed=3)
    abw = bf.AmortizedBayesianWorkflow(
        wf,
        m,
        num_samples=300,
        force="psis",
        reference_simulations=500,
        nuts_warmup=200,
        nuts_draws=200,
        chees_warmup=100,
        num_superchains=4,
        num_subchains=8,
    )
    res = abw.run({"y": data["y"]}, seed=1)
    assert set(res.step) <= {"psis", "chees", "nuts", "review"}
    assert np.all(np.isfinite(res.diagnostics["khat"]))  # PSIS ran for every dataset
    assert res.draws["sigma"].shape == (6, 300, 1) and np.all(res.draws["sigma"] > 0)
    table = res.table()
    assert list(table["step"]) == list(res.step) and "distance" in table
    idata = res.to_inference_data(0)
    assert idata.posterior["mu"].shape[:2] == (1, 300)
    assert set(res.seconds) == {"amortized", "psis", "chees", "nuts"}
    # accepted draws agree with the true parameter in distribution: across datasets the
    # truth's rank among 300 draws is not extreme (|z| < 4 for every dataset)
    z = (res.draws["mu"][..., 0].mean(1) - data["mu"][:, 0]) / res.draws["mu"][..., 0].std(1)
    assert np.all(np.abs(z) < 4)


def test_mcmc_path_and_out_of_distribution(trained):
    wf, m = trained
    data = m.simulator.sample(2, seed=4)
    y = np.concatenate([data["y"], 40.0 + data["y"][:1]])  # the last lies far outside
    abw = bf.AmortizedBayesianWorkflow(
        wf,
        m,
        num_samples=200,
        force="mcmc",
        reference_simulations=500,
        chees_warmup=150,
        num_superchains=4,
        num_subchains=8,
        nuts_warmup=200,
        nuts_draws=300,
    )
    res = abw.run({"y": y}, seed=2)
    assert res.diagnostics["ood"][2] and not res.diagnostics["ood"][:2].any()
    assert np.all(np.isnan(res.diagnostics["khat"]))  # forced past PSIS
    assert np.all(np.isfinite(res.diagnostics["nested_rhat"]))
    assert set(res.step) <= {"chees", "nuts", "review"}
    # accepted MCMC draws of the far dataset match NumPyro's own NUTS (reference): posterior
    # means within 0.15 posterior sd (both have thousands of effective draws... a few
    # hundred for ours, so the Monte Carlo sd of the mean is below 0.07 sd)
    if res.step[2] != "review":
        import jax
        from numpyro.infer import MCMC, NUTS

        ref = MCMC(NUTS(model), num_warmup=500, num_samples=2000, progress_bar=False)
        ref.run(jax.random.key(0), y=y[2])
        for k in ("mu", "sigma"):
            r = np.asarray(ref.get_samples()[k])
            assert abs(res.draws[k][2].mean() - r.mean()) < 0.15 * r.std(), k
    with pytest.raises(KeyError, match="lack"):
        abw.run({"x": y})
