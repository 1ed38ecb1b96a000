"""Ensemble disagreement against exactly known member posteriors."""

import numpy as np
import pytest

import amortized as bf
from amortized.diagnostics.ensemble_disagreement import ensemble_disagreement


def test_disagreement_is_the_spread_of_member_means_in_posterior_sd():
    rng = np.random.default_rng(0)
    # member k draws N(m_k, s_k^2): means 0, 0.2, 0.4 (sd 0.2) and sds 1, 1, 1 on dataset 0;
    # on dataset 1 the same means with sds 1, 1.5, 2 (root mean variance 1.555)
    m = np.array([0.0, 0.2, 0.4])
    sds = np.array([[1.0, 1.0], [1.0, 1.5], [1.0, 2.0]])  # (member, dataset)
    z = rng.normal(size=(3, 2, 40000, 1))
    draws = m[:, None, None, None] + sds[:, :, None, None] * z
    d = ensemble_disagreement(draws)
    # 40,000 draws per member: each mean within 0.02 (4 standard errors of 1 / 200), so the
    # sd of three means within 0.02; the posterior sds within 1.5%
    np.testing.assert_allclose(d.disagreement[:, 0], [0.2, 0.2 / np.sqrt(29 / 12)], atol=0.02)
    np.testing.assert_allclose(d.log_sd_spread[:, 0], [0.0, np.log([1, 1.5, 2]).std(ddof=1)],
                               atol=0.02)  # fmt: skip
    # threshold 0.3: dataset 0 agrees; dataset 1's widths differ (log sd spread 0.35)
    assert d.flagged.tolist() == [False, True]
    with pytest.raises(ValueError, match="num_members >= 2"):
        ensemble_disagreement(draws[:1])


def test_an_ensemble_reports_its_members_disagreement():
    sim = bf.simulators.benchmarks.two_moons()
    adapter = bf.Adapter.create_default("theta", "x")
    members = [
        bf.ContinuousApproximator(
            inference_network=bf.networks.CouplingFlow(depth=2), adapter=adapter
        )
        for _ in range(2)
    ]
    ensemble = bf.approximators.EnsembleApproximator(members)
    ensemble.fit(dataset=sim.sample(2000, seed=0), epochs=3, batch_size=128, seed=1,
                 progress=False)  # fmt: skip
    x = sim.sample(3, seed=2)["x"]
    d = ensemble.disagreement(conditions={"x": x}, num_samples=500, seed=3)
    assert d.disagreement.shape == (3, 2) and d.flagged.shape == (3,)
    # the same as the function on the members' own draws with the seeds the method uses
    draws = ensemble.member_draws(conditions={"x": x}, num_samples=500, seed=3)["theta"]
    np.testing.assert_allclose(d.disagreement, ensemble_disagreement(draws).disagreement)
