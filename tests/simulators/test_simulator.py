import numpy as np
import pytest

import amortized as bf
from amortized.simulators import SimulationError


def prior():
    return {"mu": np.random.normal(), "sigma": np.random.gamma(2.0, 1.0)}


def likelihood(mu, sigma, N=5):
    return {"y": np.random.normal(mu, sigma, size=N)}


def test_composes_by_argument_name_and_stacks():
    sim = bf.make_simulator([prior, likelihood])
    out = sim.sample(7, seed=1)
    assert out["mu"].shape == (7, 1) and out["sigma"].shape == (7, 1)
    assert out["y"].shape == (7, 5)


def test_seed_reproducible_and_restores_global_state():
    sim = bf.make_simulator([prior, likelihood])
    np.random.seed(3)
    before = np.random.get_state()[1].copy()
    a, b = sim.sample(4, seed=11), sim.sample(4, seed=11)
    np.testing.assert_array_equal(a["y"], b["y"])
    assert not np.array_equal(a["y"], sim.sample(4, seed=12)["y"])
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_batch_shape_tuple():
    out = bf.make_simulator([prior, likelihood]).sample((2, 3), seed=0)
    assert out["y"].shape == (2, 3, 5) and out["mu"].shape == (2, 3, 1)


def test_meta_fn_shared_within_batch():
    sim = bf.make_simulator([prior, likelihood], meta_fn=lambda: {"N": np.random.randint(3, 9)})
    out = sim.sample(5, seed=2)
    assert out["y"].shape == (5, int(out["N"]))


def test_fixing_a_variable_shared_and_per_draw():
    sim = bf.make_simulator([prior, likelihood])
    out = sim.sample(4, seed=0, mu=100.0, sigma=1e-6)
    np.testing.assert_allclose(out["y"], 100.0, atol=1e-3)
    per = np.array([1.0, 2.0, 3.0, 4.0])
    out = sim.sample(4, seed=0, mu=per, sigma=1e-6)
    np.testing.assert_allclose(out["y"].mean(axis=1), per, atol=1e-3)


def test_batched_functions_with_rng_and_key():
    def bprior(batch_size, rng):
        return {"theta": rng.normal(size=(batch_size, 2))}

    def blik(theta, key):
        import jax

        return {"x": np.asarray(theta + jax.random.normal(key, theta.shape))}

    out = bf.make_simulator([bprior, blik], is_batched=True).sample(6, seed=0)
    assert out["theta"].shape == (6, 2) and out["x"].shape == (6, 2)


def test_raising_function_is_named_with_draw():
    def bad(mu):
        if mu > 0:
            raise ValueError("boom")
        return {"x": mu}

    sim = bf.make_simulator([prior, bad])
    with pytest.raises(SimulationError, match=r"'bad'.*at draw \d+.*boom"):
        sim.sample(50, seed=0)


def test_nonfinite_outputs_raise_or_warn():
    def nan_lik(mu):
        return {"x": np.nan if mu > 0 else mu}

    with pytest.raises(SimulationError, match=r"'x' has non-finite values in \d+ of 40"):
        bf.make_simulator([prior, nan_lik]).sample(40, seed=0)
    with pytest.warns(UserWarning, match="non-finite"):
        out = bf.make_simulator([prior, nan_lik], nonfinite="warn").sample(40, seed=0)
    assert np.isnan(out["x"]).any()


def test_bad_arguments():
    with pytest.raises(TypeError, match="unknown keyword.*accepted"):
        bf.make_simulator([prior], batched=True)
    with pytest.raises(ValueError, match="batch_shape must be positive"):
        bf.make_simulator([prior]).sample(0)
    with pytest.raises(SimulationError, match="must return a dict"):
        bf.make_simulator([lambda: 3.0]).sample(2)
    with pytest.raises(SimulationError, match="changes shape between draws"):
        bf.make_simulator([lambda: {"x": np.zeros(np.random.randint(1, 4))}]).sample(30, seed=0)


def test_misspelled_fixed_variable_raises_and_lists_variables():
    # Silent failure 2: ``thetaa=`` used to leave theta random and return an extra output.
    sim = bf.make_simulator(
        [
            lambda: {"theta": np.random.normal(size=2)},
            lambda theta: {"x": theta + np.random.normal(size=2)},
        ]
    )
    with pytest.raises(KeyError, match=r"\['thetaa'\].*\['theta', 'x'\]"):
        sim.sample(3, seed=0, thetaa=np.zeros(2))
    # fixing a real output or input still works
    assert np.all(sim.sample(3, seed=0, theta=np.zeros(2))["theta"] == 0)
    assert np.all(sim.sample(3, seed=0, x=np.ones(2))["x"] == 1)
