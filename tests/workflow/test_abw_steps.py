"""The amortized Bayesian workflow's steps as pure functions, against an exact posterior.

The model is conjugate (mu ~ N(0, 1), y_i ~ N(mu, 1), i = 1..10: mu | y ~ N(sum y / 11,
1 / 11)), and the "estimator" below draws from that posterior exactly (or from a
deliberately too narrow version of it), so every number a step returns has a reference.
"""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import stats
from scipy.optimize import brentq

import amortized as bf
from amortized.workflow.abw_steps import (
    UnconstrainedTarget,
    amortized_step,
    mcmc_step,
    psis_step,
    reference_step,
    starting_points,
)

N_OBS = 10


def model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    with numpyro.plate("n", N_OBS):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def exact_posterior(y):
    """Mean and sd of mu | y, ``(n,)`` each."""
    return y.sum(axis=1) / (N_OBS + 1), np.full(len(y), np.sqrt(1 / (N_OBS + 1)))


class ExactEstimator:
    """Draws from the exact posterior with its sd times ``scale``; log q of its draws."""

    one_pass_log_prob = True
    log_prob_caveat = None

    def __init__(self, scale=1.0):
        self.scale = scale

    def _moments(self, conditions):
        m, s = exact_posterior(np.asarray(conditions["y"], np.float64))
        return m[:, None], self.scale * s[:, None]

    def sample_and_log_prob(self, *, conditions, num_samples, seed):
        m, s = self._moments(conditions)
        z = np.random.default_rng(seed).normal(size=(len(m), num_samples))
        mu = m + s * z
        return {"mu": mu[..., None]}, stats.norm.logpdf(mu, m, s)

    def sample(self, *, conditions, num_samples, seed):
        return self.sample_and_log_prob(conditions=conditions, num_samples=num_samples, seed=seed)[
            0
        ]

    def log_prob_of_draws(self, *, draws, conditions):
        m, s = self._moments(conditions)
        return stats.norm.logpdf(np.asarray(draws["mu"])[..., 0], m, s)

    def embed(self, data):
        return np.asarray(data["y"], np.float64).mean(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def setup():
    m = bf.NumPyroModel(model, observed="y")
    y = np.asarray(m.simulator.sample(4, seed=0)["y"])
    return m, UnconstrainedTarget(m), {"y": y}


def _psis(target, data, draws, log_q, **kw):
    options = dict(
        psis_samples=2000,
        moment_matching=False,
        moment_matching_iterations=10,
        draw_seed=5,
        resample_seeds=[11, 12, 13, 14],
    )
    options.update(kw)
    return psis_step(
        ExactEstimator(options.pop("scale", 1.0)), target, data, draws, log_q, **options
    )


def test_psis_step_accepts_the_exact_posterior_and_resamples_it(setup):
    m, target, data = setup
    est = ExactEstimator()
    draws, log_q = est.sample_and_log_prob(conditions=data, num_samples=500, seed=3)
    res = _psis(target, data, draws, log_q)
    # exact proposals: every weight equals p(y) (a constant), so k-hat is far below the 0.7
    # threshold and the ESS is the number of proposals up to rounding
    assert res.accepted.all() and np.all(res.khat < 0.3), res.khat
    np.testing.assert_allclose(res.ess, 2000, rtol=1e-3)
    assert np.all(res.valid_draws == 2000) and res.note == [""] * 4
    # the weights' spread is 0 for the exact posterior (float32 log densities of a few nats)
    np.testing.assert_allclose(res.self_consistency, 0.0, atol=1e-4)
    mean, sd = exact_posterior(data["y"])
    for j in range(4):
        mu = res.resampled[j]["mu"]
        assert mu.shape == (500, 1)
        # 500 resampled draws of 2000 proposals: the mean's Monte Carlo sd is at most
        # sd * sqrt(1/500 + 1/2000); 4 of them is a 6e-5 two-sided chance per dataset
        assert abs(mu.mean() - mean[j]) < 4 * sd[j] * np.sqrt(1 / 500 + 1 / 2000)
    # log q evaluated by the step (None given) gives the same weights
    again = _psis(target, data, draws, None)
    np.testing.assert_allclose(again.khat, res.khat)
    np.testing.assert_array_equal(again.resampled[2]["mu"], res.resampled[2]["mu"])


def test_psis_step_is_a_pure_function_of_its_inputs_and_seeds(setup):
    m, target, data = setup
    draws, log_q = ExactEstimator(0.3).sample_and_log_prob(conditions=data, num_samples=200, seed=4)
    kw = dict(scale=0.3, moment_matching=True)
    a, b = _psis(target, data, draws, log_q, **kw), _psis(target, data, draws, log_q, **kw)
    for x, y in zip(a.resampled, b.resampled, strict=True):
        np.testing.assert_array_equal(x["mu"], y["mu"])
    np.testing.assert_array_equal(a.khat, b.khat)
    c = _psis(target, data, draws, log_q, resample_seeds=[21, 22, 23, 24], **kw)
    assert not np.array_equal(a.resampled[0]["mu"], c.resampled[0]["mu"])
    assert draws["mu"].shape == (4, 200, 1)  # inputs untouched


def test_a_too_narrow_proposal_fails_psis_and_moment_matching_repairs_it(setup):
    m, target, data = setup
    est = ExactEstimator(0.3)
    draws, log_q = est.sample_and_log_prob(conditions=data, num_samples=500, seed=6)
    plain = _psis(target, data, draws, log_q, scale=0.3)
    # a proposal with 0.3 of the posterior sd: the weights' tail index is far above 0.7
    assert not plain.accepted.any() and np.all(plain.khat > 0.7), plain.khat
    assert np.all(np.isnan(plain.transforms))
    # log p - log q = (1 - 0.3^2) u^2 / 2 + const for u ~ N(0, 1): the robust sd is 1.4826
    # times 0.455 times the median absolute deviation of a chi-square(1); 2,000 proposals
    # give it to a few percent
    med = stats.chi2(1).median()
    mad = brentq(lambda d: stats.chi2(1).cdf(med + d) - stats.chi2(1).cdf(med - d) - 0.5, 1e-6, 5)
    np.testing.assert_allclose(plain.self_consistency, 1.4826 * 0.455 * mad, rtol=0.1)
    matched = _psis(target, data, draws, log_q, scale=0.3, moment_matching=True)
    # an affine map of a normal proposal can reach the normal posterior exactly
    assert matched.accepted.all() and np.all(matched.transforms >= 1), matched.khat
    mean, sd = exact_posterior(data["y"])
    for j in range(4):
        mu = matched.resampled[j]["mu"][:, 0]
        assert abs(mu.mean() - mean[j]) < 0.2 * sd[j]
        assert 0.8 < mu.std() / sd[j] < 1.2


def test_mcmc_step_nuts_and_chees_reach_the_exact_posterior(setup):
    m, target, data = setup
    starts = ExactEstimator().sample(conditions=data, num_samples=300, seed=7)
    per = {i: {"mu": starts["mu"][i]} for i in range(4)}
    mean, sd = exact_posterior(data["y"])
    common = dict(
        batch=2, rhat_threshold=1.01, min_ess=400, start_seeds=[1, 2, 3, 4], num_samples=300
    )
    nuts = dict(chains=4, settings=dict(num_warmup=300, num_draws=500), chain_seeds=[5, 6, 7, 8])
    res = mcmc_step("nuts", target, m.simulator, data, per, **nuts, **common)
    again = mcmc_step("nuts", target, m.simulator, data, per, **nuts, **common)
    assert set(res.accepted) == {0, 1, 2, 3} and all(res.accepted.values()), res.note
    for i in range(4):
        mu = res.draws[i]["mu"][:, 0]
        # 300 thinned draws of 2000 with ESS >= 400: the mean's MC sd is below sd / 20
        assert abs(mu.mean() - mean[i]) < 4 * sd[i] / 20, (i, mu.mean(), mean[i])
        np.testing.assert_array_equal(mu, again.draws[i]["mu"][:, 0])  # same seeds
        assert res.rhat[i] < 1.01 and res.ess[i] >= 400
    chees = dict(
        chains=4,
        settings=dict(num_subchains=8, num_warmup=150, num_draws=150),
        chain_seeds=[5, 6, 7, 8],
    )
    res = mcmc_step(
        "chees", target, m.simulator, {"y": data["y"][:1]}, {0: per[0]}, **chees, **common
    )
    assert res.accepted[0], res.note
    assert abs(res.draws[0]["mu"].mean() - mean[0]) < 4 * sd[0] / 20


def test_starting_points_fill_a_shortfall_from_the_prior_or_say_why_not(setup):
    m, target, data = setup
    one = {"y": data["y"][0]}
    bad = {"mu": np.full((5, 1), np.nan)}
    bad["mu"][0] = 0.1  # one usable draw of five
    u = starting_points(target, m.simulator, bad, 4, one, seed=3)
    assert u.shape == (4, 1) and np.all(np.isfinite(u)) and 0.1 in u[:, 0]
    assert len(np.unique(u[:, 0])) == 4
    np.testing.assert_array_equal(u, starting_points(target, m.simulator, bad, 4, one, seed=3))
    # a dataset whose density is NaN everywhere: neither the draws nor the prior can start
    with pytest.raises(ValueError, match="0 of the amortized and prior draws.*4 starting"):
        starting_points(target, m.simulator, bad, 4, {"y": np.full(N_OBS, np.nan)}, seed=3)


def test_amortized_step_flags_datasets_outside_the_reference(setup):
    m, target, data = setup
    est = ExactEstimator()
    ref = reference_step(est, m.simulator, 2000, 0.05, seed=1)
    y = np.concatenate([data["y"], data["y"][:1] + 30.0])
    res = amortized_step(est, m, {"y": y}, ref, num_samples=100, with_log_q=True, seed=2)
    assert res.draws["mu"].shape == (5, 100, 1) and res.log_q.shape == (5, 100)
    assert res.valid.all()
    # the embedding is the sample mean, a N(0, 1 + 1/10) variable under the prior
    # predictive: +30 lies ~29 sd out; the four simulated datasets are inside unless one
    # falls in the 5% tail (seeded: they do not)
    assert res.ood.tolist() == [False] * 4 + [True]
    assert res.accepted.tolist() == [True] * 4 + [False]
    same = amortized_step(est, m, {"y": y}, ref, num_samples=100, with_log_q=False, seed=2)
    np.testing.assert_array_equal(same.draws["mu"], res.draws["mu"])
    assert same.log_q is None
