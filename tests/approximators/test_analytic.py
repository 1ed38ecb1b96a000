"""Trained approximators against analytic posteriors."""

import numpy as np
import pytest
from scipy import stats

import amortized as bf
from amortized.diagnostics import c2st


@pytest.fixture(scope="module")
def gaussian_linear_workflow():
    # 3-D gaussian_linear (prior and noise variances 0.1): posterior N(x / 2, 0.05 I)
    wf = bf.BasicWorkflow(
        simulator=bf.simulators.benchmarks.gaussian_linear(dim=3),
        inference_network=bf.networks.CouplingFlow(),
        inference_variables="theta",
        inference_conditions="x",
    )
    wf.fit_offline(wf.simulate(6000, seed=0), epochs=40, batch_size=128, seed=1, progress=False)
    return wf


@pytest.mark.slow  # C2ST classifier on 2 x 10^4 draws: a minute of the 2-core suite
def test_gaussian_linear_c2st_against_analytic_posterior(gaussian_linear_workflow):
    wf = gaussian_linear_workflow
    obs = wf.simulate(3, seed=10)["x"]
    draws = wf.sample(conditions={"x": obs}, num_samples=2000, seed=2)["theta"]
    rng = np.random.default_rng(3)
    scores = []
    for i in range(3):
        exact = obs[i] / 2 + np.sqrt(0.05) * rng.normal(size=(2000, 3))
        scores.append(c2st(exact, draws[i]))
    # With 2000 vs 2000 draws, C2ST of identical distributions is 0.5 +- ~0.02 (classifier
    # noise). A posterior with the mean off by 0.3 sd or the scale off by 20% scores > 0.6.
    assert np.mean(scores) < 0.58, scores


def test_gaussian_linear_log_prob_against_analytic_density(gaussian_linear_workflow):
    wf = gaussian_linear_workflow
    data = wf.simulate(200, seed=20)
    lp = wf.log_prob(data)
    ref = stats.multivariate_normal(mean=np.zeros(3), cov=0.05 * np.eye(3))
    ref_lp = np.array(
        [ref.logpdf(t - x / 2) for t, x in zip(data["theta"], data["x"], strict=True)]
    )
    # a 3-D density learned from 6000 simulations: mean absolute log-density error ~0.05-0.1;
    # a wrong Jacobian or standardization term shifts every value by >= 0.5
    assert np.mean(np.abs(lp - ref_lp)) < 0.2


def test_constrained_density_normalizes_and_matches_lognormal():
    # theta ~ N(0, 1), x ~ N(theta, 0.5^2), inferred as lam = exp(theta) through Adapter.log:
    # p(lam | x) = N(log lam; m, s^2) / lam with s^2 = 1 / (1 + 4), m = 4 x s^2.
    def prior():
        return {"lam": np.exp(np.random.normal())}

    def lik(lam):
        return {"x": np.log(lam) + 0.5 * np.random.normal()}

    adapter = (
        bf.Adapter()
        .log("lam")
        .rename("lam", "inference_variables")
        .rename("x", "inference_conditions")
        .convert_dtype()
    )
    wf = bf.BasicWorkflow(
        simulator=bf.make_simulator([prior, lik]),
        adapter=adapter,
        # affine couplings: exact family for this normal posterior in log lam, so the check
        # is of the adapter's Jacobian; the default's final spline, fitted to 4,000
        # simulations, wiggles by up to 0.4 nats in the bulk (a normalized density still)
        inference_network=bf.networks.CouplingFlow(depth=4, transform="affine"),
    )
    wf.fit_offline(wf.simulate(4000, seed=0), epochs=30, batch_size=128, seed=1, progress=False)
    x = 0.3
    s2, m = 0.2, 4 * 0.3 * 0.2
    grid = np.exp(np.linspace(m - 6 * np.sqrt(s2), m + 6 * np.sqrt(s2), 2001))
    lp = wf.log_prob({"lam": grid[:, None], "x": np.full((grid.size, 1), x)})
    # normalization holds only with the adapter's Jacobian; without it the integral is
    # E[1/lam]^-1-scaled (here ~0.7), so 2% is a strict check
    np.testing.assert_allclose(np.trapezoid(np.exp(lp), grid), 1.0, atol=0.02)
    ref = stats.norm(m, np.sqrt(s2)).logpdf(np.log(grid)) - np.log(grid)
    bulk = np.abs(np.log(grid) - m) < 2 * np.sqrt(s2)
    assert np.max(np.abs(lp[bulk] - ref[bulk])) < 0.15
    draws = wf.sample(conditions={"x": np.array([[x]])}, num_samples=4000, seed=3)["lam"]
    assert draws.shape == (1, 4000, 1) and np.all(draws > 0)
    # posterior median of lam is exp(m): sampling error of the log-median ~0.01
    np.testing.assert_allclose(np.median(np.log(draws)), m, atol=0.05)
