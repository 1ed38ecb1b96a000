import numpy as np
import pytest

from amortized.diagnostics import ecdf_bands, gamma_statistic
from amortized.diagnostics.ecdf import _gamma_simulated


@pytest.mark.parametrize("method", ["exact", "simulation"])
def test_band_holds_its_level(method):
    # 200 replications of 100 uniform ranks: the ECDF should leave the 95% band in 5% of them.
    # With 200 Bernoulli(0.05) trials the count has sd 3.1, so 10 +/- 6 (= 5% +/- 3%, about
    # +/- 2 sd) is the acceptance window of the issue.
    n, reps = 100, 200
    bands = ecdf_bands(n, method=method, seed=3)
    u = np.random.default_rng(7).uniform(size=(n, reps))
    ecdf = np.mean(u[None, :, :] <= bands.z[:, None, None], axis=1)
    out = np.any((ecdf < bands.lower[:, None]) | (ecdf > bands.upper[:, None]), axis=0)
    assert 0.02 <= out.mean() <= 0.08
    # the gamma statistic says the same thing as the band
    np.testing.assert_array_equal(gamma_statistic(u, len(bands.z) + 1) <= bands.gamma, out)


def test_exact_level_matches_simulation():
    # gamma_alpha from the recursion against 4000 simulated uniform samples: the simulated
    # 5% quantile has a relative Monte Carlo error of roughly 10%, so 25% is generous but
    # catches a wrong recursion (Bonferroni alpha / K would be 20x smaller).
    exact = ecdf_bands(50).gamma
    sim = _gamma_simulated(50, 50, 0.05, 4000, 11)
    assert abs(np.log(exact / sim)) < 0.25
    assert 0.05 / 49 < exact < 0.05


def test_band_contains_the_uniform_cdf_and_widens_with_confidence():
    b95, b99 = ecdf_bands(200, alpha=0.05), ecdf_bands(200, alpha=0.01)
    assert np.all(b95.lower <= b95.z) and np.all(b95.z <= b95.upper)
    assert np.all(b99.lower <= b95.lower) and np.all(b99.upper >= b95.upper)
    assert b99.gamma < b95.gamma


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_ranks=0), "num_ranks"),
        (dict(num_ranks=10, alpha=1.5), "alpha"),
        (dict(num_ranks=10, method="nope"), "method"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ecdf_bands(**kwargs)
