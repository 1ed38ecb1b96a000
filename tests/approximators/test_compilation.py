"""Repeated calls reuse compiled code: training epochs, sampling and densities trace once."""

import numpy as np

import amortized as bf
from amortized.approximators import core


def test_epochs_sampling_and_log_prob_trace_once(monkeypatch):
    counts = {"loss": 0, "sample": 0, "log_prob": 0}
    for name in counts:
        original = getattr(core, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(core, name, counted)
    wf = bf.BasicWorkflow(
        simulator=bf.simulators.benchmarks.two_moons(),
        inference_network=bf.networks.CouplingFlow(depth=2),
        inference_variables="theta",
        inference_conditions="x",
    )
    wf.fit_offline(
        wf.simulate(256, seed=0),
        epochs=3,
        batch_size=64,
        seed=0,
        progress=False,
        early_stopping=False,  # no validation loss, whose evaluation traces the loss too
    )
    # traced once to look for loops in the step (not compiled), once inside the compiled
    # epoch, which the 3 epochs reuse
    assert counts["loss"] == 2
    for seed in range(3):
        x = np.random.default_rng(seed).normal(size=(5, 2))
        wf.sample(conditions={"x": x}, num_samples=100, seed=seed)
        wf.log_prob({"theta": np.zeros((5, 2)), "x": x})
    # 5 datasets pad to a bucket of 8: one trace each for sample and log_prob
    assert counts["sample"] == 1 and counts["log_prob"] == 1
    wf.sample(conditions={"x": np.zeros((7, 2))}, num_samples=100, seed=0)
    assert counts["sample"] == 1  # 7 datasets share the bucket of 8
