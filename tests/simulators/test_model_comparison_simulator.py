"""ModelComparisonSimulator: each row from the model its label names, reproducible, with
the model frequencies asked for, and no output dropped without being told."""

import numpy as np
import pytest
from scipy import stats

import amortized as bf
from amortized.simulators import ModelComparisonSimulator, SimulationError


def _models():
    # model 0 has mu = 0 exactly, model 1 a random mu: a row's mu tells its model
    m0 = bf.make_simulator(
        [lambda: {"mu": 0.0}, lambda mu, N: {"x": mu + np.random.normal(size=N)}]
    )
    m1 = bf.make_simulator(
        [
            lambda: {"mu": 5.0 + np.random.normal()},
            lambda mu, N: {"x": mu + np.random.normal(size=N)},
        ]
    )
    return m0, m1


def test_rows_follow_their_labels_and_the_frequencies():
    sim = ModelComparisonSimulator(_models(), p=[0.3, 0.7], shared_simulator=lambda: {"N": 4})
    d = sim.sample(4000, seed=0)
    labels = d["model_indices"].argmax(axis=1)
    assert d["model_indices"].shape == (4000, 2) and np.all(d["model_indices"].sum(1) == 1)
    np.testing.assert_array_equal(d["mu"][:, 0] != 0.0, labels == 1)
    assert d["x"].shape == (4000, 4) and np.all(d["N"] == 4)
    # the count of model 1 is Binomial(4000, 0.7): a two-sided test at the 0.1% level
    assert stats.binomtest(int(labels.sum()), 4000, 0.7).pvalue > 1e-3
    again = sim.sample(4000, seed=0)
    for k in d:
        np.testing.assert_array_equal(d[k], again[k])
    other = sim.sample(4000, seed=1)
    assert not np.array_equal(other["model_indices"], d["model_indices"])


def test_a_shared_value_per_row_reaches_each_models_rows():
    def shared(batch_size, rng):
        return {"N": np.full((batch_size, 1), 3), "shift": rng.normal(size=(batch_size, 1))}

    m0 = bf.make_simulator([lambda shift, N: {"x": shift + np.zeros(N)}])
    m1 = bf.make_simulator([lambda shift, N: {"x": shift + np.ones(N)}])
    d = ModelComparisonSimulator([m0, m1], shared_simulator=shared).sample(50, seed=3)
    labels = d["model_indices"].argmax(axis=1)
    np.testing.assert_allclose(d["x"], d["shift"] + labels[:, None] * np.ones((1, 3)))


def test_a_context_per_call_is_simulated_batch_by_batch_and_padded():
    sim = ModelComparisonSimulator(
        _models(), shared_simulator=lambda: {"N": np.random.randint(3, 9)}
    )
    assert sim.varies_per_call
    d = sim.sample_ragged(40, chunk_size=8, seed=0)
    # one N per chunk of 8 rows, the rest of each row padded and masked
    np.testing.assert_array_equal(d["mask"].sum(axis=1), d["N"][:, 0])
    assert len(np.unique(d["N"][:8])) == 1


def test_one_model_per_call_without_mixed_batches():
    sim = ModelComparisonSimulator(
        _models(), use_mixed_batches=False, shared_simulator=lambda: {"N": 2}
    )
    assert sim.varies_per_call
    for seed in range(5):
        labels = sim.sample(20, seed=seed)["model_indices"].argmax(axis=1)
        assert len(np.unique(labels)) == 1


def test_different_outputs_raise_by_default_and_are_dropped_or_filled_on_request():
    m0 = bf.make_simulator([lambda: {"a": 1.0, "x": np.random.normal()}])
    m1 = bf.make_simulator([lambda: {"b": 2.0, "x": np.random.normal()}])
    with pytest.raises(SimulationError, match=r"missing per model: \{0: \['b'\], 1: \['a'\]\}"):
        ModelComparisonSimulator([m0, m1]).sample(30, seed=0)
    with pytest.warns(UserWarning, match=r"dropping outputs \['a', 'b'\]"):
        d = ModelComparisonSimulator([m0, m1], key_conflicts="drop").sample(30, seed=0)
    assert sorted(d) == ["model_indices", "x"]
    d = ModelComparisonSimulator([m0, m1], key_conflicts="fill").sample(30, seed=0)
    first = d["model_indices"][:, 0] == 1
    np.testing.assert_array_equal(np.isnan(d["a"][:, 0]), ~first)
    np.testing.assert_array_equal(np.isnan(d["b"][:, 0]), first)


def test_bad_arguments_are_named():
    m0, m1 = _models()
    with pytest.raises(ValueError, match="at least two"):
        ModelComparisonSimulator([m0])
    with pytest.raises(TypeError, match=r"simulators\[1\]"):
        ModelComparisonSimulator([m0, lambda: {}])
    with pytest.raises(ValueError, match="positive and sum to 1"):
        ModelComparisonSimulator([m0, m1], p=[1.0, 0.0])
    with pytest.raises(ValueError, match="p or logits"):
        ModelComparisonSimulator([m0, m1], p=[0.5, 0.5], logits=[0.0, 0.0])
    with pytest.raises(TypeError, match="shuffle"):
        ModelComparisonSimulator([m0, m1], shuffle=True)
    np.testing.assert_allclose(
        ModelComparisonSimulator([m0, m1], logits=[0.0, np.log(3.0)]).p, [0.25, 0.75]
    )
