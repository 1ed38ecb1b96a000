"""The importance-sampling marginal likelihood against exact values."""

import numpy as np
import pytest
from scipy import stats

from amortized.diagnostics.marginal_likelihood import (
    UnreliableEstimateWarning,
    marginal_likelihood_from_draws,
)


def test_exact_posterior_gives_the_exact_value_and_zero_spread():
    # p(theta, y) = p(y) q(theta | y) when q is the posterior: every ratio is p(y)
    rng = np.random.default_rng(0)
    theta = rng.normal(1.0, 0.5, size=(3, 1000))
    lq = stats.norm(1.0, 0.5).logpdf(theta)
    log_py = np.array([-3.0, 0.5, -10.0])
    ml = marginal_likelihood_from_draws(lq + log_py[:, None], lq)
    np.testing.assert_allclose(ml.log_ml, log_py, atol=1e-10)
    np.testing.assert_allclose(ml.consistency_sd, 0.0, atol=1e-10)
    np.testing.assert_allclose(ml.se, 0.0, atol=1e-6)
    assert ml.reliable.all()


def test_wider_proposal_is_unbiased_within_its_standard_error():
    # target: p(theta, y) = exp(2) N(theta; 0, 1); proposal N(0, 1.5^2); log p(y) = 2
    rng = np.random.default_rng(1)
    theta = rng.normal(0.0, 1.5, size=(200, 4000))
    ml = marginal_likelihood_from_draws(
        2.0 + stats.norm.logpdf(theta), stats.norm(0.0, 1.5).logpdf(theta)
    )
    z = (ml.log_ml - 2.0) / ml.se
    # standardized errors: mean ~0 (the log's bias se^2 / 2 is ~1e-4 here), sd ~1
    assert abs(z.mean()) < 0.3 and 0.7 < z.std() < 1.3
    assert np.all(ml.consistency_sd > 0.1)


def test_narrow_proposal_warns_and_invalid_draws_count():
    rng = np.random.default_rng(2)
    theta = rng.normal(0.0, 0.3, size=(1, 1000))
    lj = stats.norm.logpdf(theta)
    lq = stats.norm(0.0, 0.3).logpdf(theta)
    lj[0, :10] = -np.inf  # outside the support: no weight
    with pytest.warns(UnreliableEstimateWarning, match=r"indices \[0\]"):
        ml = marginal_likelihood_from_draws(lj, lq)
    assert ml.valid_draws[0] == 990 and not ml.reliable[0]
