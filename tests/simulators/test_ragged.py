import numpy as np
import pytest

import amortized as bf
from amortized.simulators import SharedMetaWarning, SimulationError, bucket_length, pad_ragged


def test_bucket_lengths_bound_padding_and_shapes():
    assert [bucket_length(n) for n in (1, 8, 9, 100, 128, 200)] == [1, 8, 10, 112, 128, 224]
    lengths = {bucket_length(n) for n in range(5, 101)}
    assert len(lengths) <= 20  # 96 sizes, a handful of shapes
    assert all(bucket_length(n) < 1.26 * n for n in range(1, 500))


def test_pad_ragged_masks_exactly_the_observed_rows():
    chunks = [
        {"x": np.ones((2, 3, 2)), "y": np.ones((2, 3)), "theta": np.zeros((2, 1))},
        {"x": 2 * np.ones((3, 5, 2)), "y": np.ones((3, 5)), "theta": np.ones((3, 1))},
    ]
    out = pad_ragged(chunks, pad_to=6)
    assert out["x"].shape == (5, 6, 2) and out["y"].shape == (5, 6)
    np.testing.assert_array_equal(out["mask"].sum(axis=1), [3, 3, 5, 5, 5])
    assert np.all(out["x"][out["mask"] == 0] == 0)
    assert out["theta"].shape == (5, 1)
    bad = [chunks[0], {"x": np.ones((3, 5, 2)), "y": np.ones((3, 4)), "theta": np.ones((3, 1))}]
    with pytest.raises(SimulationError, match="inconsistent lengths"):
        pad_ragged(bad)


def test_sample_ragged_draws_meta_per_chunk_and_naive_sampling_warns():
    sim = bf.make_simulator(
        [lambda N: {"x": np.random.normal(size=(N, 1))}],
        meta_fn=lambda: {"N": np.random.randint(5, 101)},
    )
    d = sim.sample_ragged(160, chunk_size=16, seed=0)
    n = d["N"][:, 0]
    np.testing.assert_array_equal(d["mask"].sum(axis=1), n)
    assert len(np.unique(n)) > 1 and d["x"].shape[1] == bucket_length(int(n.max()))
    again = sim.sample_ragged(160, chunk_size=16, seed=0)
    np.testing.assert_array_equal(again["x"], d["x"])  # seeded
    with pytest.warns(SharedMetaWarning, match="sample_ragged"):
        sim.sample(2000, seed=1)
