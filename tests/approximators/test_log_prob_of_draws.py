"""log_prob_of_draws (many draws per dataset, each dataset summarized once) equals log_prob
on the same draws with every dataset repeated, Jacobians of the adapter included."""

import numpy as np
import pytest

import amortized as bf


@pytest.fixture(scope="module")
def workflow():
    def prior():
        return {"mu": np.random.normal(size=1), "sigma": np.random.gamma(2.0, 0.5, size=1)}

    def likelihood(mu, sigma):
        return {"y": np.random.normal(mu, sigma, size=(12, 1))}

    wf = bf.BasicWorkflow(
        simulator=bf.make_simulator([prior, likelihood]),
        adapter=bf.Adapter()
        .convert_dtype()
        .constrain("sigma", lower=0.0)
        .concatenate(["mu", "sigma"], into="inference_variables")
        .rename("y", "summary_variables"),
        inference_network=bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [16]}),
        summary_network=bf.networks.DeepSet(summary_dim=4),
    )
    wf.fit_online(epochs=1, num_batches_per_epoch=5, batch_size=16, seed=0, progress=False)
    return wf


def test_matches_log_prob_with_repeated_datasets(workflow):
    data = workflow.simulate(3, seed=1)
    cond = {"y": data["y"]}
    draws = workflow.sample(conditions=cond, num_samples=7, seed=2)
    fast = workflow.log_prob_of_draws(draws=draws, conditions=cond)
    assert fast.shape == (3, 7)
    rows = {k: v.reshape(21, *v.shape[2:]) for k, v in draws.items()}
    rows["y"] = np.repeat(data["y"], 7, axis=0)
    # the same float32 network on the same inputs: agreement to float32 round-off
    np.testing.assert_allclose(fast, workflow.log_prob(rows).reshape(3, 7), rtol=1e-5, atol=1e-4)


def test_sample_and_log_prob_agrees_with_log_prob_of_draws(workflow):
    cond = {"y": workflow.simulate(3, seed=3)["y"]}
    draws, log_q = workflow.sample_and_log_prob(conditions=cond, num_samples=9, seed=4)
    assert log_q.shape == (3, 9) and draws["sigma"].shape == (3, 9, 1)
    # the inverse pass's density (adapter Jacobian included) against the forward pass on the
    # same draws: float32 round trip through the flow, so 1e-3 absolute
    ref = workflow.log_prob_of_draws(draws=draws, conditions=cond)
    np.testing.assert_allclose(log_q, ref, rtol=1e-4, atol=1e-3)
    again, _ = workflow.sample_and_log_prob(conditions=cond, num_samples=9, seed=4)
    np.testing.assert_array_equal(again["mu"], draws["mu"])


def test_bad_shapes_are_named(workflow):
    data = workflow.simulate(3, seed=1)
    draws = workflow.sample(conditions={"y": data["y"]}, num_samples=5, seed=2)
    with pytest.raises(ValueError, match="draws hold 3 datasets but conditions hold 2"):
        workflow.log_prob_of_draws(draws=draws, conditions={"y": data["y"][:2]})
    bad = dict(draws, mu=draws["mu"][:, :4])
    with pytest.raises(ValueError, match="must agree"):
        workflow.log_prob_of_draws(draws=bad, conditions={"y": data["y"]})
