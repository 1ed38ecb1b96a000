"""Model criticism: the misspecification test in summary space and the predictive checks,
against what a correct model must give (uniform p-values) and gross misfits."""

import json

import numpy as np
import pytest
from scipy import stats

import amortized as bf
from amortized.workflow.criticism import _streams

N = 20


def _prior():
    return {"mu": np.random.normal(0.0, 2.0)}


def _lik(mu):
    return {"y": mu + np.random.normal(size=(N, 1))}


@pytest.fixture(scope="module")
def trained():
    sim = bf.make_simulator([_prior, _lik])
    wf = bf.BasicWorkflow(
        simulator=sim,
        inference_network=bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [32, 32]}),
        summary_network=bf.networks.DeepSet(summary_dim=4),
        inference_variables="mu",
        summary_variables="y",
    )
    wf.fit_offline(sim.sample(3000, seed=0), epochs=10, batch_size=64, seed=1, progress=False,
                   early_stopping=False)  # fmt: skip
    return wf


def _data(n, seed, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 2.0, size=n)
    y = mu[:, None, None] + scale * rng.normal(size=(n, N, 1))
    y[:, : N // 5] += shift  # 20% of the values shifted
    return {"y": y.astype(np.float32)}, mu


def test_misspecification_p_values_are_uniform_for_simulations(trained):
    # the null is simulations of the same model, so a simulated dataset's p-value is
    # uniform whatever the network learned: KS at 1% over 200 datasets
    obs = trained.simulate(200, seed=5)
    res = trained.misspecification_test({"y": obs["y"]}, num_reference=1000, num_null=500,
                                        seed=6)  # fmt: skip
    assert res.p_value.shape == (200,)
    assert stats.kstest(res.p_value, "uniform").pvalue > 0.01
    # 5% expected; 200 Bernoulli(0.05): sd 1.5%, so 11% is 4 sd
    assert res.flagged.mean() < 0.11


def test_misspecification_flags_gross_misfits(trained):
    outliers, _ = _data(100, 7, shift=6.0)
    res = trained.misspecification_test(outliers, num_reference=1000, num_null=500, seed=8)
    # four values 6 sd off among 20 move every pooled summary far outside what the
    # model simulates (measured: all flagged); a test without power would flag ~5%
    assert res.flagged.mean() > 0.8
    batch = trained.misspecification_test(outliers, num_reference=1000, num_null=200, batch=True,
                                          seed=8)  # fmt: skip
    assert batch.p_value.shape == (1,) and batch.flagged[0]


def test_posterior_predictive_p_values(trained):
    # the scale is known (1), so the posterior does not adapt to the sample sd and its
    # posterior predictive p-value is uniform under the model: KS at 1% over 100 datasets
    good, _ = _data(100, 9)
    check = trained.posterior_predictive(good, num_samples=200, seed=10)
    assert set(check.names) == {"y mean", "y sd", "y min", "y max"}
    j = check.names.index("y sd")
    assert stats.kstest(check.p_value[:, j], "uniform").pvalue > 0.01
    # overdispersed truth (sd 2): the replicated sd (about 1) falls below the observed
    # (about 2) in nearly every replicate, so p ~ 0; 0.9 leaves room for the rare
    # dataset whose sample sd is small
    wide, _ = _data(100, 11, scale=2.0)
    bad = trained.posterior_predictive(wide, num_samples=200, seed=12)
    assert (bad.p_value[:, j] <= 0.025).mean() > 0.9
    assert bad.flagged[:, j].mean() > 0.9


def test_posterior_predictive_p_values_match_the_exact_ones_given_the_draws(trained):
    # given the posterior draws theta_s, the replicated mean is N(theta_s, 1/N), so the
    # p-value of the observed mean is exactly mean_s P(N(theta_s, 1/N) > ybar): the check
    # must reproduce it up to the replicates' Monte Carlo error
    good, _ = _data(30, 13)
    check = trained.posterior_predictive(
        good, statistics={"mean": lambda d: d["y"].mean(axis=(1, 2))}, num_samples=400, seed=14
    )
    draws = trained.sample(num_samples=400, conditions=good, seed=_streams(14)["draws"])
    ybar = good["y"].mean(axis=(1, 2)).astype(np.float64)
    exact = stats.norm.sf(ybar[:, None], draws["mu"][..., 0], 1 / np.sqrt(N)).mean(axis=1)
    # 400 replicates: Monte Carlo sd of a p-value <= 0.025, so 0.1 is 4 sd
    assert np.max(np.abs(check.p_value[:, 0] - exact)) < 0.1
    assert np.mean(np.abs(check.p_value[:, 0] - exact)) < 0.03


def test_prior_predictive(trained):
    good, _ = _data(20, 15)
    check = trained.prior_predictive(good, num_simulations=500, seed=16)
    assert check.replicated.shape == (500, 4) and check.p_value.shape == (20, 4)
    # mu ~ N(0, 2): a dataset with mean 40 lies 20 prior sd out
    far = {"y": good["y"] + 40.0}
    j = check.names.index("y mean")
    assert np.all(trained.prior_predictive(far, num_simulations=500, seed=16).flagged[:, j])
    alone = trained.prior_predictive(num_simulations=100, seed=17)
    assert alone.observed.shape == (0, 4) and alone.replicated.shape == (100, 4)


def test_report_with_observed_data(trained, tmp_path):
    good, _ = _data(10, 18)
    wide, _ = _data(10, 19, scale=2.0)
    observed = {"y": np.concatenate([good["y"], wide["y"]])}
    folder = trained.report(tmp_path / "rep", test_data=50, num_samples=200, observed=observed,
                            seed=20)  # fmt: skip
    rep = json.loads((folder / "report.json").read_text())
    for name in ("misspecification", "prior_predictive", "posterior_predictive"):
        assert (folder / f"{name}.png").stat().st_size > 0
        assert name in rep["figures"]
    flagged = np.array(rep["observed"]["posterior_predictive_flagged"])
    # the overdispersed datasets (indices 10-19) have a sample sd near 2 where the model
    # replicates about 1 (measured: 9 of 10 flagged); a correct model's dataset is flagged
    # with probability <= 5% over the four statistics (Bonferroni; measured 1 of 10)
    assert np.sum(flagged >= 10) >= 7 and np.sum(flagged < 10) <= 3


def test_bad_input(trained):
    good, _ = _data(5, 21)
    with pytest.raises(ValueError, match="statistic 'boom' failed"):
        trained.posterior_predictive(good, statistics={"boom": lambda d: d["nope"]}, seed=1)
    with pytest.raises(ValueError, match=r"statistic 'flat' must return one number per dataset"):
        trained.posterior_predictive(good, statistics={"flat": lambda d: d["y"]}, seed=1)
    with pytest.raises(KeyError, match="keep names"):
        trained.posterior_predictive(good, keep="x", seed=1)
    with pytest.raises(KeyError, match="not simulator outputs"):
        trained.prior_predictive({"z": np.zeros((2, 3))}, seed=1)
    with pytest.raises(ValueError, match="same leading number"):
        trained.prior_predictive({"y": good["y"], "w": np.zeros((3, 1))}, seed=1)
    with pytest.raises(ValueError, match="alpha"):
        trained.misspecification_test(good, alpha=1.5, seed=1)
    with pytest.raises(TypeError, match="accepted"):
        trained.misspecification_test(good, num_nul=10)


def test_marginal_likelihood_of_a_conjugate_model():
    import numpyro
    import numpyro.distributions as dist

    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
        with numpyro.plate("n", N):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    m = bf.NumPyroModel(model, observed="y")
    # affine couplings: the exact family for this normal posterior, so that every one of
    # the 100 datasets passes PSIS after 10 epochs; the check is of the importance-sampling
    # arithmetic, not of the flow's fit
    wf = bf.BasicWorkflow(
        simulator=m, inference_network=bf.networks.CouplingFlow(depth=2, transform="affine",
            subnet_kwargs={"widths": [32, 32]})
    )  # fmt: skip
    wf.fit_offline(wf.simulate(3000, seed=0), epochs=10, batch_size=64, seed=1, progress=False,
                   early_stopping=False)  # fmt: skip
    y = m.sample(100, seed=2)["y"]
    ml = wf.marginal_likelihood({"y": y}, model=m, num_samples=2000, seed=3)
    exact = stats.multivariate_normal(np.zeros(N), np.eye(N) + 4.0 * np.ones((N, N))).logpdf(
        np.asarray(y, np.float64)
    )
    # importance sampling with 2000 draws from a roughly trained flow: the acceptance
    # target is a mean absolute error below 0.1; a log q off by a constant (an
    # unnormalized density) would be off by that constant everywhere
    assert np.mean(np.abs(ml.log_ml - exact)) < 0.1
    assert np.all(np.abs(ml.log_ml - exact) < 4 * ml.se + 0.05)
    assert ml.reliable.all()
    # self-consistency: log p(theta, y) - log q(theta | y) = log p(y) + log p(theta | y) -
    # log q(theta | y), so its spread is that of the exact log posterior minus log q at the
    # same draws (the same seed gives the same draws)
    draws, log_q = wf.approximator.sample_and_log_prob(
        conditions={"y": y}, num_samples=2000, seed=3, progress=False
    )
    ybar = np.asarray(y, np.float64).mean(axis=1)
    prec = 1 / 4.0 + N
    log_post = stats.norm(N * ybar[:, None] / prec, 1 / np.sqrt(prec)).logpdf(draws["mu"][..., 0])
    r = log_post - np.asarray(log_q, np.float64)
    robust_sd = 1.4826 * np.median(np.abs(r - np.median(r, axis=1, keepdims=True)), axis=1)
    # float32 log densities: agreement to ~1e-3 nats
    np.testing.assert_allclose(ml.consistency_sd, robust_sd, rtol=1e-2, atol=2e-3)
    with pytest.raises(TypeError, match="needs the model's likelihood"):
        wf.marginal_likelihood({"y": y}, model=wf.simulator)
