"""The misspecification test in summary space against a brute-force MMD and the exact null."""

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cdist

from amortized.diagnostics.misspecification import BANDWIDTH_FACTORS, misspecification_test
from amortized.diagnostics.mmd import median_distance


def test_statistic_is_the_mmd_of_a_point_mass_against_the_reference():
    rng = np.random.default_rng(0)
    ref, null = rng.normal(size=(300, 2)) * [1.0, 3.0], rng.normal(size=(100, 2)) * [1.0, 3.0]
    obs = np.array([[0.5, 1.0], [3.0, -6.0]])
    res = misspecification_test(obs, ref, null)
    # brute force: whiten by the reference's mean and Cholesky factor, then
    # MMD^2 = k(s, s) - 2 mean_j k(s, r_j) + mean_{j != j'} k(r_j, r_j')
    cov = np.cov(ref, rowvar=False)
    chol = np.linalg.cholesky(cov + 1e-6 * np.trace(cov) / 2 * np.eye(2))
    w = lambda x: np.linalg.solve(chol, (x - ref.mean(0)).T).T  # noqa: E731
    r, o = w(ref), w(obs)
    bw = median_distance(r[:150], r[150:]) * np.array(BANDWIDTH_FACTORS)

    def k(a, b):
        d2 = cdist(a, b, "sqeuclidean")
        return sum(np.exp(-d2 / (2 * h**2)) for h in bw)

    krr = k(r, r)
    rr = (krr.sum() - np.trace(krr)) / (300 * 299)
    expected = len(bw) - 2 * k(o, r).mean(axis=1) + rr
    np.testing.assert_allclose(res.statistic, expected, rtol=1e-10)
    assert res.flagged.tolist() == [False, True]


def test_p_values_are_uniform_under_the_null():
    # observed and null summaries from the reference's own distribution: every p-value
    # is uniform (exchangeable with the null draws); KS at 1% over 300 datasets
    rng = np.random.default_rng(1)
    ref = rng.standard_t(5, size=(1000, 3))
    res = misspecification_test(rng.standard_t(5, size=(300, 3)), ref,
                                rng.standard_t(5, size=(1000, 3)))  # fmt: skip
    assert stats.kstest(res.p_value, "uniform").pvalue > 0.01
    # (1 + count) / (1 + m): the smallest possible p-value is 1 / 1001
    assert res.p_value.min() >= 1 / 1001


def test_batch_test():
    rng = np.random.default_rng(2)
    ref, null = rng.normal(size=(800, 2)), rng.normal(size=(400, 2))
    same = misspecification_test(rng.normal(size=(30, 2)), ref, null, batch=True, num_null=200)
    # a batch of 30 shifted by 0.5 sd: each alone is unremarkable, together not
    shifted = rng.normal(size=(30, 2)) + 0.5
    single = misspecification_test(shifted, ref, null)
    together = misspecification_test(shifted, ref, null, batch=True, num_null=200)
    assert same.p_value.shape == (1,) and not same.flagged[0]
    assert together.flagged[0] and single.flagged.mean() < 0.5


def test_bad_input():
    rng = np.random.default_rng(3)
    ref, null = rng.normal(size=(100, 2)), rng.normal(size=(50, 2))
    with pytest.raises(ValueError, match=r"observed_summaries must be \(num_datasets, 2\)"):
        misspecification_test(np.zeros((3, 3)), ref, null)
    with pytest.raises(ValueError, match="non-finite summaries in rows \\[1\\]"):
        misspecification_test(np.array([[0.0, 0.0], [np.nan, 0.0]]), ref, null)
    with pytest.raises(ValueError, match="at least 20"):
        misspecification_test(np.zeros((1, 2)), ref, null[:10])
    with pytest.raises(ValueError, match="alpha"):
        misspecification_test(np.zeros((1, 2)), ref, null, alpha=0.0)
    with pytest.raises(ValueError, match="batch test needs at least 2"):
        misspecification_test(np.zeros((1, 2)), ref, null, batch=True)
