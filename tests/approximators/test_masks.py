"""Ragged sets in one batch: padding with a summary_mask, end to end."""

import numpy as np
import pytest

import amortized as bf
from amortized.approximators.standardization import compute_stats


def ragged(num, n_max, seed):
    """mu ~ N(0, 1); N ~ U{3..n_max}; x_i ~ N(mu, 1), padded with 1e3 to n_max rows."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(num, 1))
    n = rng.integers(3, n_max + 1, size=num)
    x = np.full((num, n_max, 1), 1e3)
    mask = np.zeros((num, n_max))
    for j in range(num):
        x[j, : n[j], 0] = mu[j, 0] + rng.normal(size=n[j])
        mask[j, : n[j]] = 1.0
    return {"mu": mu, "x": x, "mask": mask}, n


@pytest.fixture(scope="module")
def wf():
    w = bf.BasicWorkflow(
        inference_network=bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [16]}),
        summary_network=bf.networks.SetTransformer(
            summary_dim=4, embed_dims=[16], num_heads=[2], mlp_widths=[16]
        ),
        inference_variables="mu",
        summary_variables="x",
        summary_mask="mask",
    )
    data, _ = ragged(256, 12, seed=0)
    w.fit_offline(data, epochs=2, batch_size=64, seed=1, progress=False, early_stopping=False)
    return w


def test_padded_dataset_summarizes_like_the_unpadded_one(wf):
    data, n = ragged(5, 12, seed=3)
    padded = wf.summarize({"x": data["x"], "mask": data["mask"]})
    for j in range(5):
        alone = wf.summarize({"x": data["x"][j : j + 1, : n[j]]})
        # the padding tolerance; float32 attention over a different number of rows
        np.testing.assert_allclose(padded[j], alone[0], atol=1e-5)


def test_standardization_ignores_padding():
    data, n = ragged(50, 12, seed=4)
    stats = compute_stats(
        {"summary_variables": data["x"], "summary_mask": data["mask"]},
        ["summary_variables"],
        row_masks={"summary_variables": "summary_mask"},
    )
    observed = np.concatenate([data["x"][j, : n[j], 0] for j in range(50)])
    mean, std = stats["summary_variables"]
    np.testing.assert_allclose(float(mean[0]), observed.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(std[0]), observed.std(), rtol=1e-5)


def test_bad_masks_are_named(wf):
    data, _ = ragged(4, 12, seed=5)
    bad = dict(data, mask=data["mask"][:, :5])
    with pytest.raises(ValueError, match=r"'summary_mask' must have shape \(batch, N\)"):
        wf.summarize({"x": bad["x"], "mask": bad["mask"]})
    empty = data["mask"].copy()
    empty[2] = 0
    with pytest.raises(ValueError, match="no observed rows"):
        wf.summarize({"x": data["x"], "mask": empty})
    with pytest.raises(ValueError, match="only 0 and 1"):
        wf.summarize({"x": data["x"], "mask": data["mask"] * 0.5})


def test_random_row_mask_hides_the_rate_and_never_a_whole_dataset():
    import jax
    import jax.numpy as jnp

    from amortized.approximators.core import random_row_mask

    sv = jnp.ones((400, 20, 1))
    mask = jnp.ones((400, 20)).at[:, 15:].set(0.0)
    out = random_row_mask({"summary_variables": sv, "summary_mask": mask}, jax.random.key(0), 0.3)
    m = np.asarray(out["summary_mask"])
    assert np.all(m[:, 15:] == 0)  # padding stays padding
    # 6000 observed rows, hidden with probability 0.3: sd 0.006 of the fraction, 4 sd allowed
    assert abs(1 - m[:, :15].mean() - 0.3) < 0.025
    tiny = random_row_mask(
        {"summary_variables": sv[:, :1], "summary_mask": mask[:, :1]}, jax.random.key(1), 0.9
    )
    assert np.all(np.asarray(tiny["summary_mask"]).sum(axis=1) == 1)  # one row: kept


def test_training_with_mask_rate(wf):
    data, _ = ragged(128, 12, seed=6)
    hist = wf.fit_offline(data, epochs=1, batch_size=64, seed=2, progress=False, mask_rate=0.2)
    assert np.isfinite(hist["loss"][-1])
    with pytest.raises(ValueError, match="mask_rate"):
        wf.fit_offline(data, epochs=1, batch_size=64, mask_rate=1.5)


def test_a_set_routed_as_a_flat_condition_is_named():
    data, _ = ragged(64, 8, seed=7)
    w = bf.BasicWorkflow(
        inference_network=bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [8]}),
        inference_variables="mu",
        inference_conditions="x",  # a (batch, N, 1) set: needs summary_variables
    )
    with pytest.raises(ValueError, match="route sets or time series to 'summary_variables'"):
        w.fit_offline(data, epochs=1, batch_size=32, progress=False, early_stopping=False)
