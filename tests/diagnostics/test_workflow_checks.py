"""The checks of the amortized Bayesian workflow: PSIS, nested R-hat, out-of-distribution."""

import numpy as np
import pytest
from scipy import stats

from amortized.diagnostics.nested_rhat import nested_rhat
from amortized.diagnostics.ood import mmd_check, summary_reference
from amortized.diagnostics.psis import moment_match, pareto_k_threshold, psis, resample


def conjugate_log_weights(q_scale: float, num: int = 4000, seed: int = 0):
    """theta ~ N(0, 1), y | theta ~ N(theta, 1): posterior N(y/2, 1/2). Proposal with sd
    ``q_scale`` times the posterior's, centred correctly."""
    rng = np.random.default_rng(seed)
    y = 0.7
    sd = np.sqrt(0.5) * q_scale
    theta = y / 2 + sd * rng.normal(size=num)
    log_lik = stats.norm.logpdf(y, theta, 1.0)
    log_prior = stats.norm.logpdf(theta, 0.0, 1.0)
    log_q = stats.norm.logpdf(theta, y / 2, sd)
    return theta, log_lik + log_prior - log_q


def test_psis_weights_are_constant_for_the_exact_posterior():
    _, lw = conjugate_log_weights(1.0)
    r = psis(lw)
    # log w = log p(y) for every draw: equal weights, full effective sample size
    np.testing.assert_allclose(np.exp(r.log_weights), 1 / 4000, rtol=1e-6)
    assert r.ess[0] == pytest.approx(4000, rel=1e-6) and r.accepted[0]


def test_khat_is_large_for_a_too_narrow_proposal_and_small_for_a_wide_one():
    # a proposal 0.4x as wide as the posterior gives weights with a heavy right tail
    # (k-hat near 1 - 0.4^2 ... well above 0.7); a 1.3x wider proposal is benign (k-hat < 0.5)
    _, narrow = conjugate_log_weights(0.4, seed=1)
    _, wide = conjugate_log_weights(1.3, seed=2)
    r = psis(np.stack([narrow, wide]))
    assert r.khat[0] > 0.7 and not r.accepted[0]
    assert r.khat[1] < 0.5 and r.accepted[1]
    assert r.threshold == pareto_k_threshold(4000) == 0.7
    assert pareto_k_threshold(100) == pytest.approx(0.5)


def test_resampling_follows_the_weights():
    theta, lw = conjugate_log_weights(1.3, num=20000, seed=3)
    r = psis(lw)
    draws = resample(theta[:, None], r.log_weights[0], 5000, seed=4)
    # reweighted draws recover the posterior N(0.35, 0.5): mean sd 0.01, var sd 0.01
    assert abs(draws.mean() - 0.35) < 0.04 and abs(draws.var() - 0.5) < 0.05
    distinct = resample(theta[:, None], r.log_weights[0], 100, replace=False, seed=5)
    assert len(np.unique(distinct)) == 100


def test_moment_matching_repairs_a_shifted_narrow_proposal_with_exact_weights():
    # target: a normalized correlated 2-D normal; proposal N(0, 0.5^2 I), shifted and too
    # narrow (k-hat far above 0.7 before matching)
    mean = np.array([1.5, -1.0])
    cov = np.array([[1.0, 0.6], [0.6, 0.8]])
    target = stats.multivariate_normal(mean, cov)
    rng = np.random.default_rng(0)
    u = 0.5 * rng.normal(size=(4000, 2))
    log_q = stats.multivariate_normal(np.zeros(2), 0.25 * np.eye(2)).logpdf(u)
    assert psis(target.logpdf(u) - log_q).khat[0] > 0.7
    r = moment_match(u, log_q, target.logpdf)
    assert r.psis.accepted[0] and r.transforms >= 1
    # the moved draws are an affine image A u + b of the proposal draws, and their tracked
    # log density (log q - log|det A|) is exactly SciPy's N(b, 0.25 A A^T) density there
    x = np.c_[u, np.ones(len(u))]
    coef = np.linalg.lstsq(x, r.draws, rcond=None)[0]
    np.testing.assert_allclose(x @ coef, r.draws, atol=1e-9)
    a, b = coef[:2].T, coef[2]
    moved = stats.multivariate_normal(b, 0.25 * a @ a.T)
    np.testing.assert_allclose(r.log_q, moved.logpdf(r.draws), atol=1e-8)
    # and the weighted draws recover the target's moments (ESS ~950: sd of the mean
    # estimates ~0.03, of the covariance entries ~0.05)
    w = np.exp(r.psis.log_weights[0])
    np.testing.assert_allclose(w @ r.draws, mean, atol=0.1)
    c = r.draws - w @ r.draws
    np.testing.assert_allclose(c.T @ (c * w[:, None]), cov, atol=0.15)


def test_moment_matching_keeps_a_proposal_that_already_passes():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(2000, 1))
    log_q = stats.norm.logpdf(u[:, 0])
    r = moment_match(u, log_q, lambda x: stats.norm.logpdf(x[:, 0], 0.0, 1.2))
    assert r.transforms == 0 and r.psis.accepted[0]
    np.testing.assert_array_equal(r.draws, u)
    with pytest.raises(ValueError, match="must be finite"):
        moment_match(np.full((10, 1), np.nan), np.zeros(10), lambda x: x[:, 0])
    with pytest.raises(ValueError, match=r"\(S, dim\)"):
        moment_match(np.zeros(10), np.zeros(10), lambda x: x)


def test_nested_rhat_near_one_for_posterior_chains_and_large_for_separate_modes():
    rng = np.random.default_rng(0)
    good = rng.normal(size=(16, 8, 100, 2))
    assert np.all(nested_rhat(good) < 1.01)
    stuck = (
        rng.normal(size=(16, 8, 100, 1))
        + np.where(np.arange(16) % 2, 3.0, -3.0)[:, None, None, None]
    )
    assert nested_rhat(stuck)[0] > 2.0
    with pytest.raises(ValueError, match="superchains"):
        nested_rhat(good[:1])


def test_ood_flags_shifted_data_and_passes_in_distribution_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    ref = summary_reference(rng.normal(size=(5000, 5)), alpha=0.05)
    inside = ref.flags(rng.normal(size=(4000, 5))).mean()
    # nominal 5%: the cut-off is a quantile of 5000 training distances (sd of its coverage
    # ~0.3%) and 4000 test datasets add a binomial sd of 0.35%: 5% +/- 1.5% is > 3 sd
    assert 0.035 <= inside <= 0.065
    shifted = rng.normal(size=(1000, 5)) + np.array([4.0, 0, 0, 0, 0])
    # a shift of 4 sd: the squared distance is noncentral chi^2(5, 16), so the flag rate is
    # its survival function at the squared cut-off (binomial sd 0.011 with 1000 datasets)
    expected = stats.ncx2.sf(ref.cutoff**2, 5, 16.0)
    assert abs(ref.flags(shifted).mean() - expected) < 0.04 and expected > 0.8
    with pytest.raises(ValueError, match=r"\(num_datasets, 5\)"):
        ref.distances(np.zeros((3, 4)))


def test_ood_reference_of_one_summary_dimension():
    # one summary (e.g. a network conditioned on one scalar): the distance is |z|, so the
    # cut-off is the 95% quantile of |N(0, 1)|, 1.96 (sd of a quantile of 5000 draws ~0.03)
    rng = np.random.default_rng(3)
    ref = summary_reference(rng.normal(size=(5000, 1)), alpha=0.05)
    assert abs(ref.cutoff - stats.norm.ppf(0.975)) < 0.1
    assert ref.flags(np.array([[0.5], [6.0]])).tolist() == [False, True]


def test_mmd_check_for_a_batch():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(3000, 3))
    value, threshold = mmd_check(train, rng.normal(size=(100, 3)), num_null=50, seed=2)
    assert value <= threshold
    value, threshold = mmd_check(train, rng.normal(size=(100, 3)) + 1.0, num_null=50, seed=2)
    assert value > threshold


def test_split_mmds_from_one_kernel_matrix_equal_mmd_of_each_split():
    from amortized.diagnostics.mmd import kernel_matrix, mmd, split_mmds

    x = np.random.default_rng(0).normal(size=(300, 3))
    bw = np.array([0.5, 1.0, 2.0])
    got = split_mmds(kernel_matrix(x, bw), 40, 3, len(bw), np.random.default_rng(5))
    rng = np.random.default_rng(5)  # the same permutations
    for value in got:
        a = rng.permutation(300)
        # the same sums in another order, in float64
        np.testing.assert_allclose(value, mmd(x[a[:40]], x[a[40:]], bw), rtol=1e-9, atol=1e-15)


def test_rows_without_finite_weights_fail_and_zero_weights_stay_zero():
    lw = np.zeros((3, 500))
    lw[0] = -np.inf  # every draw impossible under the model
    lw[1, :100] = -np.inf  # some impossible, the rest equal
    lw[2] = np.random.default_rng(0).normal(size=500)
    lw[2, :50] = -np.inf
    r = psis(lw)
    assert r.khat[0] == np.inf and not r.accepted[0] and r.ess[0] == 0
    # equal weights on the 400 possible draws: ESS exactly 400, zero weight elsewhere
    assert r.khat[1] == -np.inf and np.isclose(r.ess[1], 400)
    assert np.all(np.isneginf(r.log_weights[1, :100]))
    assert np.all(np.isneginf(r.log_weights[2, :50])) and np.isfinite(r.khat[2])
    np.testing.assert_allclose(np.exp(r.log_weights[1:]).sum(axis=1), 1.0, rtol=1e-9)
