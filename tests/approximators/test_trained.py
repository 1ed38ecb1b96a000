"""A trained approximator's state is one immutable value that fit replaces whole."""

import dataclasses

import numpy as np
import pytest

import amortized as bf
from amortized.approximators.trained import Trained


def _simulator():
    def prior():
        return {"theta": np.random.normal(size=2)}

    def likelihood(theta):
        return {"x": theta + 0.1 * np.random.normal(size=2)}

    return bf.make_simulator([prior, likelihood])


def _approximator():
    return bf.approximators.ContinuousApproximator(
        inference_network=bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [16]}),
        adapter=bf.Adapter.create_default("theta", "x"),
    )


def test_fit_replaces_the_state_whole_and_a_failed_fit_leaves_it():
    sim = _simulator()
    approx = _approximator()
    assert approx.state is None and approx.nets is None and not approx.is_trained
    approx.fit(dataset=sim.sample(256, seed=0), epochs=1, batch_size=64, seed=0, progress=False)
    first = approx.state
    assert isinstance(first, Trained) and approx.nets is first.nets
    assert first.condition_keys == ["x"] and first.shapes["inference_variables"] == (2,)
    draws = approx.sample(num_samples=5, conditions={"x": np.zeros((1, 2))}, seed=1)

    calls = []

    def simulate(n, seed):  # the second epoch's simulations fail
        calls.append(n)
        if len(calls) > 1:
            raise RuntimeError("simulator crashed")
        return sim.sample(n, seed=seed)

    with pytest.raises(RuntimeError, match="simulator crashed"):
        approx.fit(
            simulate=simulate, num_batches_per_epoch=2, epochs=3, batch_size=32, seed=1,
            progress=False,
        )  # fmt: skip
    assert approx.state is first  # nothing of the failed fit was kept
    again = approx.sample(num_samples=5, conditions={"x": np.zeros((1, 2))}, seed=1)
    np.testing.assert_array_equal(again["theta"], draws["theta"])

    approx.fit(dataset=sim.sample(256, seed=2), epochs=1, batch_size=64, seed=2, progress=False)
    assert approx.state is not first and approx.state.shapes == first.shapes
    assert len(approx.history["loss"]) == 2


def test_the_state_cannot_be_changed_in_place():
    sim = _simulator()
    approx = _approximator()
    approx.fit(dataset=sim.sample(128, seed=0), epochs=1, batch_size=64, seed=0, progress=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        approx.state.nets = None
    with pytest.raises(AttributeError):
        approx.nets = None  # a read-only view of the state
