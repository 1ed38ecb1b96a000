"""FusionNetwork: several sources (a set and a time series), end to end with save/load."""

import numpy as np
import pytest

import amortized as bf


def data(num, seed):
    """mu drives a set of 6 draws, phi a series of 12 steps; both have to be read."""
    rng = np.random.default_rng(seed)
    mu, phi = rng.normal(size=(num, 1)), rng.uniform(-0.8, 0.8, size=(num, 1))
    s = mu[:, None, :] + 0.3 * rng.normal(size=(num, 6, 1))
    y = np.zeros((num, 12, 1))
    for t in range(1, 12):
        y[:, t] = phi * y[:, t - 1] + rng.normal(size=(num, 1))
    return {"mu": mu, "phi": phi, "set": s, "series": y}


def workflow():
    adapter = (
        bf.Adapter()
        .convert_dtype()
        .concatenate(["mu", "phi"], into="inference_variables")
        .group(["set", "series"], into="summary_variables")
    )
    fusion = bf.networks.FusionNetwork(
        {
            "set": bf.networks.DeepSet(summary_dim=3, widths_equivariant=[8], widths_invariant=[8]),
            "series": bf.networks.TimeSeriesNetwork(summary_dim=3, filters=[8], recurrent_dim=8),
        }
    )
    return bf.BasicWorkflow(
        adapter=adapter,
        inference_network=bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [16]}),
        summary_network=fusion,
    )


def test_fusion_trains_samples_and_round_trips(tmp_path):
    wf = workflow()
    wf.fit_offline(
        data(256, 0), epochs=2, batch_size=64, seed=1, progress=False, early_stopping=False
    )
    test = data(3, 5)
    cond = {"set": test["set"], "series": test["series"]}
    assert wf.summarize(cond).shape == (3, 6)  # 3 + 3, concatenated
    draws = wf.sample(conditions=cond, num_samples=7, seed=2)
    assert draws["mu"].shape == (3, 7, 1) and draws["phi"].shape == (3, 7, 1)
    wf.save(tmp_path / "f.amz")
    again = bf.load(tmp_path / "f.amz").sample(conditions=cond, num_samples=7, seed=2)
    np.testing.assert_array_equal(again["mu"], draws["mu"])
    # each backbone reads its own source: changing the series changes the summary
    other = dict(cond, series=cond["series"][::-1].copy())
    assert not np.allclose(wf.summarize(other), wf.summarize(cond))


def test_fusion_errors():
    with pytest.raises(ValueError, match="non-empty dict"):
        bf.networks.FusionNetwork({})
    with pytest.raises(TypeError, match="must be a summary network"):
        bf.networks.FusionNetwork({"a": object()})
    net = bf.networks.FusionNetwork({"a": bf.networks.DeepSet()})
    with pytest.raises(ValueError, match="dict of sources"):
        net.build((10, 2), None)
    import jax

    with pytest.raises(ValueError, match=r"sources \['b'\]"):
        net.build({"b": (10, 2)}, jax.random.key(0))
