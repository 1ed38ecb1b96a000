"""Metrics against analytic values (conjugate normal posterior N(y/2, 1/2), prior N(0, 1))."""

import numpy as np
import pytest
from scipy import stats

from amortized.diagnostics import (
    calibration_error,
    expected_coverage,
    mmd,
    nrmse,
    posterior_contraction,
    posterior_z_scores,
    recovery_correlation,
    sbc_ranks,
    tarp,
)


@pytest.mark.parametrize("scale", [0.6, 1.0, 1.5])
def test_coverage_and_calibration_error_match_the_normal_formula(posterior, scale):
    # a posterior with sd scaled by c covers the truth at level q with probability
    # 2 Phi(c z_q) - 1 (z_q the (1+q)/2 normal quantile). 2000 datasets: binomial sd of a
    # coverage <= 0.011, so 0.035 (3 sd) per level.
    draws, theta = posterior(2000, 400, seed=5, scale=scale)
    cov = expected_coverage(draws, theta, levels=[0.5, 0.8, 0.95])
    q = np.array([0.5, 0.8, 0.95])
    expected = 2 * stats.norm.cdf(stats.norm.ppf((1 + q) / 2) * scale) - 1
    np.testing.assert_allclose(
        cov.details["coverage"], np.repeat(expected[:, None], 2, 1), atol=0.035
    )
    assert np.all(cov.details["lower"] <= cov.details["coverage"])
    assert np.all(cov.details["coverage"] <= cov.details["upper"])
    levels = np.linspace(0.005, 0.995, 20)
    gaps = np.abs(2 * stats.norm.cdf(stats.norm.ppf((1 + levels) / 2) * scale) - 1 - levels)
    err = calibration_error(draws, theta).values
    # the median gap of the formula, up to the sampling noise of 2000 datasets (binomial sd
    # <= 0.011 per level, 3 sd) and of the 400-draw interval ends
    np.testing.assert_allclose(err, np.median(gaps), atol=0.035)


def test_contraction_z_scores_and_recovery(posterior):
    draws, theta = posterior(2000, 400, seed=6)
    # posterior variance 1/2, prior variance 1: contraction 0.5 (sample variances of 400
    # draws have relative sd 0.07, the median over datasets is much tighter; 0.03 allowed)
    np.testing.assert_allclose(posterior_contraction(draws, theta).values, 0.5, atol=0.03)
    z = posterior_z_scores(draws, theta)
    # z ~ N(0, 1) exactly here: mean sd 1/sqrt(2000) = 0.022, so 0.07 is 3 sd
    np.testing.assert_allclose(z.values, 0.0, atol=0.07)
    np.testing.assert_allclose(z.details["mean_square"], 1.0, atol=0.1)
    # the posterior median y/2 correlates with theta at sqrt(1/2) (corr of theta with
    # theta + e); r's sd with 2000 pairs is about 0.012
    np.testing.assert_allclose(recovery_correlation(draws, theta).values, np.sqrt(0.5), atol=0.04)
    ranks = sbc_ranks(draws, theta)
    assert ranks.details["ranks"].min() >= 0 and ranks.details["ranks"].max() <= 400
    np.testing.assert_allclose(ranks.values, 0.5, atol=0.03)  # sd 0.0065 per variable


def test_nrmse_is_zero_for_point_masses_and_grows_with_error():
    rng = np.random.default_rng(0)
    t = rng.uniform(-1, 3, size=(100, 2))
    exact = np.repeat(t[:, None, :], 10, axis=1)
    assert np.allclose(nrmse(exact, t).values, 0.0)
    # draws all off by 0.4 on a range of about 4: NRMSE = 0.4 / range
    off = nrmse(exact + 0.4, t).values
    np.testing.assert_allclose(off, 0.4 / (t.max(0) - t.min(0)), rtol=1e-9)


def test_tarp_calibrated_versus_overconfident(posterior):
    # TARP's ECP of a calibrated posterior stays within a few binomial sds (1000 datasets:
    # 0.016) of the diagonal; a 3x too narrow posterior leaves it by far more
    good = tarp(*posterior(1000, 300, seed=8))
    bad = tarp(*posterior(1000, 300, seed=8, scale=0.33))
    assert good.values[0] < 0.06
    assert bad.values[0] > 0.2 and bad.details["atc"] < 0


def test_mmd_matches_the_gaussian_closed_form():
    # x ~ N(0, I), y ~ N(mu, I) in 2-D, one Gaussian kernel of bandwidth h:
    # MMD^2 = 2 (h^2 / (h^2 + 2)) (1 - exp(-|mu|^2 / (2 (h^2 + 2)))).
    rng = np.random.default_rng(2)
    mu, h = np.array([0.8, 0.0]), 1.5
    x, y = rng.normal(size=(1500, 2)), rng.normal(size=(1500, 2)) + mu
    exact = 2 * h**2 / (h**2 + 2) * (1 - np.exp(-(mu @ mu) / (2 * (h**2 + 2))))
    # the unbiased estimator's sd with 1500 points per sample is about 0.005
    assert abs(mmd(x, y, bandwidths=[h]) - exact) < 0.015
    assert abs(mmd(x, rng.normal(size=(1500, 2)), bandwidths=[h])) < 0.01


def test_bad_input_names_what_arrived(posterior):
    draws, theta = posterior(20, 10, seed=0)
    with pytest.raises(KeyError, match="theta"):
        nrmse(draws, {"beta": theta["theta"]})
    with pytest.raises(ValueError, match=r"targets must have shape"):
        nrmse(draws["theta"], theta["theta"][:5])
    bad = draws["theta"].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        calibration_error(bad, theta["theta"])
    with pytest.raises(ValueError, match="targets"):
        calibration_error(draws, None)
