"""Powers of prior distributions against p^gamma normalized numerically (SciPy quadrature)."""

import jax
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import integrate, stats

from amortized.simulators.prior_power import SirPower, power_distribution

# (distribution, the same in SciPy, its support, points to compare)
CASES = [
    (dist.Normal(1.0, 2.0), stats.norm(1.0, 2.0), (-np.inf, np.inf), np.linspace(-3, 5, 7)),
    (dist.HalfNormal(1.5), stats.halfnorm(scale=1.5), (0, np.inf), np.linspace(0.1, 4, 7)),
    (
        dist.LogNormal(0.3, 0.7),
        stats.lognorm(0.7, scale=np.exp(0.3)),
        (0, np.inf),
        np.linspace(0.2, 4, 7),
    ),
    (dist.Gamma(2.5, 1.3), stats.gamma(2.5, scale=1 / 1.3), (0, np.inf), np.linspace(0.2, 5, 7)),
    (dist.InverseGamma(3.0, 2.0), stats.invgamma(3.0, scale=2.0), (0, np.inf), [0.2, 1, 3]),
    (dist.Exponential(0.7), stats.expon(scale=1 / 0.7), (0, np.inf), np.linspace(0.1, 6, 7)),
    (dist.Beta(2.0, 3.0), stats.beta(2.0, 3.0), (0, 1), np.linspace(0.05, 0.95, 7)),
    (dist.Laplace(0.5, 1.2), stats.laplace(0.5, 1.2), (-np.inf, np.inf), np.linspace(-3, 4, 7)),
    (dist.Uniform(-1.0, 2.0), stats.uniform(-1.0, 3.0), (-1, 2), np.linspace(-0.9, 1.9, 7)),
]


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("d,ref,support,points", CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_exact_powers_are_the_normalized_power(d, ref, support, points, gamma):
    q, exact = power_distribution(d, gamma)
    assert exact

    def powered(x):
        return ref.pdf(x) ** gamma

    # quadrature of a smooth density: relative error far below 1e-4; ours are float32 log
    # densities (about 1e-6 relative), so 1e-3 in log density is a strict check
    z = integrate.quad(powered, *support, limit=400)[0]
    want = np.array([np.log(powered(x) / z) for x in points])
    got = np.array([float(q.log_prob(x)) for x in points])  # scalars: Beta's log_prob
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_wrapped_distributions_are_powered_through():
    q, exact = power_distribution(dist.Normal(0.0, 2.0).expand([3]).to_event(1), 4.0)
    assert exact and q.event_shape == (3,)
    np.testing.assert_allclose(q.base_dist.base_dist.scale, 1.0)
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    q, _ = power_distribution(dist.MultivariateNormal(np.zeros(2), cov), 2.0)
    np.testing.assert_allclose(q.covariance_matrix, cov / 2.0, rtol=1e-5)
    q, _ = power_distribution(dist.Dirichlet(np.array([2.0, 3.0, 1.5])), 2.0)
    np.testing.assert_allclose(q.concentration, [3.0, 5.0, 2.0])


def test_sir_power_of_a_student_t_matches_the_normalized_power():
    d = dist.StudentT(5.0)
    q, exact = power_distribution(d, 2.0, num_candidates=128)
    assert not exact and isinstance(q, SirPower)
    draws = np.asarray(jax.jit(lambda k: q.sample(k, (10000,)))(jax.random.key(0)))
    grid = np.linspace(-12, 12, 24001)
    dens = stats.t.pdf(grid, 5.0) ** 2
    cdf = np.cumsum(dens) / dens.sum()
    # SIR with 128 candidates: its bias in the CDF is O(1 / 128), under the KS test's
    # resolution at 10,000 draws (critical value 0.0163 at the 1% level); a sampler that
    # ignored the power (StudentT(5) itself) is 0.08 away from this CDF
    ks = stats.kstest(draws, lambda x: np.interp(x, grid, cdf)).statistic
    assert ks < 0.0163
    plain = stats.t.rvs(5.0, size=10000, random_state=1)
    assert stats.kstest(plain, lambda x: np.interp(x, grid, cdf)).statistic > 0.05
