"""MCMC refinement against an analytic target: a correlated 2-D Gaussian."""

import jax.numpy as jnp
import numpy as np

from amortized.workflow.mcmc import chees_hmc, chees_hmc_many, nuts, nuts_many

MEAN = np.array([1.0, -2.0])
COV = np.array([[1.0, 0.8], [0.8, 2.0]])
PREC = np.linalg.inv(COV)


def logdensity(x):
    d = x - MEAN
    return -0.5 * d @ jnp.asarray(PREC, jnp.float32) @ d


def test_chees_from_dispersed_starts_converges_to_the_target():
    starts = MEAN + 2.0 * np.random.default_rng(0).normal(size=(8, 2))
    res = chees_hmc(logdensity, starts, num_subchains=16, num_warmup=300, num_draws=50, seed=1)
    assert res.draws.shape == (8, 16, 50, 2)
    # the acceptance rule for many short chains
    assert np.all(res.rhat < 1.01), res.rhat
    flat = res.draws.reshape(-1, 2)
    # 6400 draws with ESS in the thousands: mean sd ~0.03, 0.12 is ~4 sd of the larger one
    np.testing.assert_allclose(flat.mean(axis=0), MEAN, atol=0.12)
    np.testing.assert_allclose(np.cov(flat, rowvar=False), COV, atol=0.25)


def test_nuts_fallback():
    starts = MEAN + np.random.default_rng(2).normal(size=(4, 2))
    res = nuts(logdensity, starts, num_warmup=300, num_draws=1000, seed=3)
    assert res.draws.shape == (4, 1, 1000, 2)
    # 4 x 1000 draws: split R-hat's noise is far below the 0.01 margin
    assert np.all(res.rhat < 1.01) and np.all(res.ess > 1000)
    np.testing.assert_allclose(res.draws.reshape(-1, 2).mean(axis=0), MEAN, atol=0.15)


def shifted(x, shift):
    d = x - (jnp.asarray(MEAN, jnp.float32) + shift)
    return -0.5 * d @ jnp.asarray(PREC, jnp.float32) @ d


def test_many_datasets_at_once_each_reach_their_own_target():
    shifts = np.array([[0.0, 0.0], [3.0, -1.0], [-5.0, 4.0]], np.float32)
    rng = np.random.default_rng(4)
    starts = MEAN + shifts[:, None] + 2.0 * rng.normal(size=(3, 8, 2))
    many = chees_hmc_many(
        shifted, starts, shifts, seeds=[1, 2, 3], num_subchains=16, num_warmup=300, num_draws=50
    )
    for res, s in zip(many, shifts, strict=True):
        assert res.draws.shape == (8, 16, 50, 2) and np.all(res.rhat < 1.01), res.rhat
        # tolerances as in the single-dataset test above
        np.testing.assert_allclose(res.draws.reshape(-1, 2).mean(axis=0), MEAN + s, atol=0.12)
    many = nuts_many(shifted, starts[:, :4], shifts, seeds=[5, 6, 7], num_warmup=300)
    for res, s in zip(many, shifts, strict=True):
        assert res.draws.shape == (4, 1, 500, 2) and np.all(res.rhat < 1.01)
        # 4 x 500 draws, ESS ~1000+: mean sd ~0.05, 0.2 is 4 sd
        np.testing.assert_allclose(res.draws.reshape(-1, 2).mean(axis=0), MEAN + s, atol=0.2)
