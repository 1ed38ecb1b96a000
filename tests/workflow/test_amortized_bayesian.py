"""The amortized Bayesian workflow end to end on a small NumPyro model."""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import amortized as bf
from amortized.diagnostics.psis import pareto_k_threshold


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
    # the kernel misspecification test's p-values: (1 + count) / (1 + #null) lies in (0, 1]
    p = table["misspecification_p"]
    assert np.all((p > 0) & (p <= 1)) and np.all(np.isnan(table["disagreement"]))
    idata = res.to_inference_data(0)
    assert idata.posterior["mu"].shape[:2] == (1, 300)
    # ArviZ 1.x: a DataTree that arviz_stats summarizes; its mean and sd are the draws'
    from arviz_stats import summary

    tree = res.to_datatree(0)
    assert tree.attrs["amortized_step"] == res.step[0]
    table = summary(tree, kind="stats")
    mu = res.draws["mu"][0].ravel()
    row = [i for i in table.index if str(i).startswith("mu")][0]
    np.testing.assert_allclose(table.loc[row, "mean"], mu.mean(), atol=0.006)  # 2 decimals
    np.testing.assert_allclose(table.loc[row, "sd"], mu.std(ddof=1), atol=0.006)
    np.testing.assert_array_equal(tree["observed_data"]["y"].values, data["y"][0])
    assert tree.attrs["amortized_khat"] == res.diagnostics["khat"][0]
    # and one ArviZ 1.x plot: a panel per parameter, mu's density over its draws' range
    import matplotlib

    matplotlib.use("Agg")
    from arviz_plots import plot_dist

    pc = plot_dist(tree, backend="matplotlib")
    assert set(pc.viz["plot"].data_vars) == {"mu", "sigma"}
    lo, hi = pc.viz["plot"]["mu"].item().get_xlim()
    assert lo <= mu.min() and mu.max() <= hi
    with pytest.raises(IndexError, match="dataset=6 is out of range for 6"):
        res.to_datatree(6)
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
    # means within 3 Monte Carlo sd of their difference (acceptance needs a bulk ESS >= 400
    # for ours, a variance of its mean below sd^2 / 400; the reference's from its own ESS)
    if res.step[2] != "review":
        import jax
        from numpyro.diagnostics import effective_sample_size
        from numpyro.infer import MCMC, NUTS

        ref = MCMC(NUTS(model), num_warmup=500, num_samples=2000, progress_bar=False)
        ref.run(jax.random.key(0), y=y[2])
        for k in ("mu", "sigma"):
            r = np.asarray(ref.get_samples()[k])
            mc_sd = r.std() * np.sqrt(1 / 400 + 1 / effective_sample_size(r[None]))
            assert abs(res.draws[k][2].mean() - r.mean()) < 3 * mc_sd, k
    with pytest.raises(KeyError, match="lack"):
        abw.run({"x": y})


def test_bad_models_and_data_are_named(trained):
    wf, m = trained
    with pytest.raises(TypeError, match="model must give log densities.*model=None"):
        bf.AmortizedBayesianWorkflow(wf, m.simulator)
    with pytest.raises(ValueError, match="force='psis' needs a model with a likelihood"):
        bf.AmortizedBayesianWorkflow(wf, None, force="psis")
    abw = bf.AmortizedBayesianWorkflow(wf, m, reference_simulations=200)
    with pytest.raises(ValueError, match=r"data\['y'\] has shape \(2, 7\); expected"):
        abw.run({"y": np.zeros((2, 7))})


def impossible_if_flagged(p, d):
    """The fixture's likelihood, except that a dataset whose first value exceeds 50 is
    impossible under every parameter (log density -inf)."""
    import jax.numpy as jnp

    z = (d["y"] - p["mu"]) / p["sigma"]
    ll = jnp.sum(-0.5 * z**2 - jnp.log(p["sigma"])) - 5.0 * jnp.log(2 * jnp.pi)
    return jnp.where(d["y"][0] > 50.0, -jnp.inf, ll)


def normal_halfnormal_prior(p):
    import jax.numpy as jnp

    return jnp.sum(-0.5 * p["mu"] ** 2 - 0.5 * p["sigma"] ** 2)


def test_non_finite_density_marks_one_dataset_for_review(trained):
    wf, m = trained
    lm = bf.LikelihoodModel(
        m.simulator,
        log_likelihood=impossible_if_flagged,
        log_prior=normal_halfnormal_prior,
        parameters=["mu", "sigma"],
        observed="y",
        supports={"sigma": (0.0, None)},
    )
    data = m.simulator.sample(3, seed=6)["y"]
    y = np.concatenate([data, 60.0 + data[:1]])
    abw = bf.AmortizedBayesianWorkflow(
        wf,
        lm,
        num_samples=200,
        force="psis",
        reference_simulations=300,
        chees_warmup=100,
        num_superchains=4,
        num_subchains=8,
        nuts_warmup=200,
        nuts_draws=200,
        # this test is about the failure path, not MCMC efficiency: loose convergence
        # thresholds, so that short chains on ordinary datasets are accepted
        min_ess=50.0,
        rhat_threshold=1.05,
    )
    with pytest.warns(UserWarning, match="1 dataset.*review"):
        res = abw.run({"y": y}, seed=3)
    # the impossible dataset: no finite weight, no finite starting point, marked for review
    assert res.step[3] == "review" and res.diagnostics["valid_draws"][3] == 0
    assert "finite log density" in res.diagnostics["note"][3]
    # the others go on and end accepted (PSIS or MCMC on an ordinary posterior)
    assert set(res.step[:3]) <= {"psis", "chees", "nuts"}
    assert list(res.diagnostics["note"][:3]) == ["", "", ""]


def test_without_a_likelihood_only_the_amortized_step_runs(trained):
    wf, m = trained
    data = m.simulator.sample(3, seed=8)["y"]
    y = np.concatenate([data, 40.0 + data[:1]])
    abw = bf.AmortizedBayesianWorkflow(wf, None, num_samples=100, reference_simulations=500)
    with pytest.warns(UserWarning, match="review"):
        res = abw.run({"y": y}, seed=1)
    assert res.step[3] == "review" and "no likelihood" in res.diagnostics["note"][3]
    assert res.diagnostics["ood"][3]
    assert set(res.draws) == {"mu", "sigma"} and res.draws["mu"].shape == (4, 100, 1)
    # the in-distribution ones are accepted at about the nominal rate (alpha = 0.05): with
    # three datasets, at most one flagged is a loose bound that still fails if all are
    assert np.sum(res.step[:3] == "amortized") >= 2


def test_in_distribution_datasets_are_refined_by_psis_when_it_passes(trained):
    wf, m = trained
    y = m.simulator.sample(4, seed=9)["y"]
    common = dict(num_samples=200, psis_samples=800, reference_simulations=500)
    res = bf.AmortizedBayesianWorkflow(wf, m, **common).run({"y": y}, seed=4)
    inside = ~res.diagnostics["ood"]
    assert inside.sum() >= 3  # alpha = 0.05: at most one of four flagged, as a loose bound
    # PSIS ran for every dataset, the in-distribution ones included; those it accepts carry
    # its draws (step "psis"), the others keep their amortized draws
    khat = res.diagnostics["khat"]
    assert np.all(np.isfinite(khat) | (khat == -np.inf))
    threshold = pareto_k_threshold(800)
    assert np.all((res.step[inside] == "psis") == (khat[inside] <= threshold))
    assert np.all(np.isin(res.step[inside], ["psis", "amortized"]))
    off = bf.AmortizedBayesianWorkflow(wf, m, psis_in_distribution=False, **common)
    res_off = off.run({"y": y}, seed=4)
    assert np.all(res_off.step[inside] == "amortized")
    assert np.all(np.isnan(res_off.diagnostics["khat"][inside]))
    # the same amortized draws (same seed) are where both runs start
    np.testing.assert_array_equal(
        res_off.draws["mu"][inside & (res.step == "amortized")],
        res.draws["mu"][inside & (res.step == "amortized")],
    )


def test_psis_weights_agree_whether_log_q_comes_with_the_draws_or_after(trained, monkeypatch):
    # a coupling flow returns log q from its sampling pass; networks without that evaluate
    # log q of the step-1 draws afterwards (log_prob_of_draws): the same weights either way
    wf, m = trained
    y = m.simulator.sample(3, seed=10)["y"]
    common = dict(num_samples=200, psis_samples=600, reference_simulations=300)
    one_pass = bf.AmortizedBayesianWorkflow(wf, m, **common).run({"y": y}, seed=5)
    after = bf.AmortizedBayesianWorkflow(wf, m, **common)
    monkeypatch.setattr(after, "_psis_needs_step1_log_q", lambda: False)
    res = after.run({"y": y}, seed=5)
    # float32 densities through the inverse and the forward pass: k-hat to 1e-3
    np.testing.assert_allclose(res.diagnostics["khat"], one_pass.diagnostics["khat"], atol=1e-3)
    assert list(res.step) == list(one_pass.step)


def test_estimated_log_q_is_refused_for_importance_weights():
    # Silent failure 7: an estimated log q (Hutchinson) must not weight draws in PSIS
    m = bf.NumPyroModel(model, observed="y")
    net = bf.networks.FlowMatching(subnet_kwargs={"widths": [16]}, exact_divergence_max_dim=1)
    wf = bf.BasicWorkflow(simulator=m.simulator, adapter=m.default_adapter(), inference_network=net)
    wf.fit_offline(
        m.simulator.sample(64, seed=0),
        epochs=1,
        batch_size=32,
        seed=0,
        progress=False,
        early_stopping=False,
    )
    assert not wf.approximator.log_prob_is_exact
    abw = bf.AmortizedBayesianWorkflow(wf, m, num_samples=20, reference_simulations=50)
    with pytest.raises(ValueError, match="exact density of the draws.*Hutchinson"):
        abw.run({"y": m.simulator.sample(2, seed=1)["y"]})


def test_an_ensemble_or_a_bare_approximator_runs_the_workflow(trained, tmp_path):
    # issue 21: the workflow takes any estimator with a density. Two copies of the trained
    # approximator make an ensemble whose mixture density is the member's own (an exact
    # reference for log q and the embedding); its draws then go through PSIS like any other
    from amortized.approximators.serialization import load_approximator, save_approximator

    wf, m = trained
    copy, _ = load_approximator(save_approximator(wf.approximator, tmp_path / "a.amz"))
    ens = bf.approximators.EnsembleApproximator([wf.approximator, copy])
    data = m.simulator.sample(4, seed=11)
    y = {"y": data["y"]}
    emb = wf.approximator.embed(y)
    np.testing.assert_array_equal(ens.embed(y), np.concatenate([emb, emb], axis=1))
    draws = wf.approximator.sample(num_samples=50, conditions=y, seed=0)
    # log(0.5 q + 0.5 q) = log q, in float32 arithmetic
    np.testing.assert_allclose(
        ens.log_prob_of_draws(draws=draws, conditions=y),
        wf.approximator.log_prob_of_draws(draws=draws, conditions=y),
        rtol=1e-5,
        atol=1e-5,
    )
    common = dict(num_samples=200, force="psis", reference_simulations=300, nuts_draws=200)
    for estimator in (ens, wf.approximator):
        res = bf.AmortizedBayesianWorkflow(estimator, m, **common).run(y, seed=3)
        assert set(res.step) <= {"psis", "chees", "nuts", "review"}
        assert np.all(np.isfinite(res.diagnostics["khat"]))
        mu = res.draws["mu"][..., 0]
        # the truth's z-score against the accepted draws, as in the first test
        assert np.all(np.abs((mu.mean(1) - data["mu"][:, 0]) / mu.std(1)) < 4)
    with pytest.raises(TypeError, match="lacks sample, sample_and_log_prob"):
        bf.AmortizedBayesianWorkflow(object(), m)


def test_a_parametric_point_estimator_is_a_proposal_for_psis():
    # an MvNormalScore network has an exact density (its normal's), so the workflow can
    # importance-weight its draws; a point-only network is refused by name
    m = bf.NumPyroModel(model, observed="y")
    net = bf.networks.ScoringRuleNetwork(
        scoring_rules={"mvn": bf.scoring_rules.MvNormalScore()}, subnet_kwargs={"widths": [32]}
    )
    wf = bf.BasicWorkflow(simulator=m.simulator, adapter=m.default_adapter(), inference_network=net)
    wf.fit_online(epochs=8, num_batches_per_epoch=50, batch_size=64, seed=0, progress=False)
    data = m.simulator.sample(4, seed=12)
    res = bf.AmortizedBayesianWorkflow(
        wf, m, num_samples=200, force="psis", reference_simulations=300, nuts_draws=200
    ).run({"y": data["y"]}, seed=1)
    assert np.all(np.isfinite(res.diagnostics["khat"]))
    mu = res.draws["mu"][..., 0]
    # the truth's z-score against the accepted draws, as in the first test
    assert np.all(np.abs((mu.mean(1) - data["mu"][:, 0]) / mu.std(1)) < 4)
    point = bf.BasicWorkflow(
        simulator=m.simulator,
        adapter=m.default_adapter(),
        inference_network=bf.networks.PointNetwork("median"),
    )
    point.fit_offline(m.simulator.sample(64, seed=0), epochs=1, seed=0, progress=False)
    with pytest.raises(ValueError, match="exact density of the draws.*no density"):
        bf.AmortizedBayesianWorkflow(point, m, num_samples=20, reference_simulations=50).run(
            {"y": data["y"]}
        )
