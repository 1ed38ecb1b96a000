"""EnsembleApproximator: the mixture's draws and density against its members."""

import numpy as np
import pytest
from scipy import stats

import amortized as bf
from amortized.approximators import EnsembleApproximator
from amortized.approximators.serialization import ModelFileError, load_approximator


def _prior():
    return {"theta": np.random.normal()}


def _lik(theta):
    return {"x": theta + 0.5 * np.random.normal()}


def _member():
    adapter = (
        bf.Adapter()
        .rename("theta", "inference_variables")
        .rename("x", "inference_conditions")
        .convert_dtype()
    )
    return bf.ContinuousApproximator(
        # affine couplings: for one parameter a Gaussian family, exact for this conjugate
        # model, so the mixture checks below test the ensemble's arithmetic, not how far 2,000
        # simulations pin down a spline's shape (the default's final spline wiggles by up to
        # 0.3 nats there)
        inference_network=bf.networks.CouplingFlow(
            depth=2, transform="affine", subnet_kwargs={"widths": [32, 32]}
        ),
        adapter=adapter,
    )


@pytest.fixture(scope="module")
def trained():
    data = bf.make_simulator([_prior, _lik]).sample(2000, seed=0)
    ensemble = EnsembleApproximator([_member(), _member()])
    histories = ensemble.fit(dataset=data, epochs=30, batch_size=128, seed=1, progress=False)
    return ensemble, histories


def test_fit_trains_members_with_their_own_seeds(trained):
    ensemble, histories = trained
    assert ensemble.is_trained and len(histories) == 2
    a, b = (np.asarray(m.nets.inference.layers[0].net_a.layers[0].weight) for m in ensemble)
    assert not np.allclose(a, b)  # different initializations and batch orders


def test_mixture_density_normalizes_and_matches_the_posterior(trained):
    ensemble, _ = trained
    # theta ~ N(0, 1), x ~ N(theta, 0.5^2): posterior N(0.8 x, 0.2)
    x = 0.4
    grid = np.linspace(-3.0, 3.5, 3001)
    lp = ensemble.log_prob({"theta": grid[:, None], "x": np.full((grid.size, 1), x)})
    # each member is a normalized density, so the mixture is: quadrature error ~1e-6;
    # unnormalized weights (sum 2) would give 2
    np.testing.assert_allclose(np.trapezoid(np.exp(lp), grid), 1.0, atol=0.01)
    ref = stats.norm(0.8 * x, np.sqrt(0.2)).logpdf(grid)
    bulk = np.abs(grid - 0.8 * x) < 2 * np.sqrt(0.2)
    # two small flows after 30 epochs on 2000 simulations: ~0.1 error at the bulk's edge
    # (0.2 after 15 epochs, with or without the weight average); a mean off by 0.3 sd
    # gives 0.6 there
    assert np.max(np.abs(lp[bulk] - ref[bulk])) < 0.2


def test_log_prob_is_the_weighted_member_mixture(trained):
    ensemble, _ = trained
    weighted = EnsembleApproximator(ensemble.members, weights=[3.0, 1.0])
    data = bf.make_simulator([_prior, _lik]).sample(50, seed=5)
    q0, q1 = (np.exp(m.log_prob(data)) for m in ensemble)
    np.testing.assert_allclose(np.exp(weighted.log_prob(data)), 0.75 * q0 + 0.25 * q1, rtol=1e-6)
    draws = {"theta": np.random.default_rng(0).normal(size=(3, 40, 1))}
    cond = {"x": data["x"][:3]}
    lq = weighted.log_prob_of_draws(draws=draws, conditions=cond)
    q0, q1 = (np.exp(m.log_prob_of_draws(draws=draws, conditions=cond)) for m in ensemble)
    np.testing.assert_allclose(np.exp(lq), 0.75 * q0 + 0.25 * q1, rtol=1e-6)


def test_each_draw_comes_from_a_member_with_its_weight(trained):
    ensemble, _ = trained
    cond = {"x": np.array([[0.4], [-1.0]])}
    import jax

    keys = jax.random.split(jax.random.key(7), 3)
    own = [
        m.sample(num_samples=4000, conditions=cond, seed=k, progress=False)["theta"]
        for m, k in zip(ensemble, keys[:2], strict=True)
    ]
    only_first = EnsembleApproximator(ensemble.members, weights=[1.0, 0.0])
    np.testing.assert_array_equal(
        only_first.sample(num_samples=4000, conditions=cond, seed=7)["theta"], own[0]
    )
    weighted = EnsembleApproximator(ensemble.members, weights=[0.3, 0.7])
    draws = weighted.sample(num_samples=4000, conditions=cond, seed=7)["theta"]
    assert draws.shape == (2, 4000, 1)
    from_first = draws == own[0]
    assert np.all(from_first | (draws == own[1]))
    # 8000 Bernoulli(0.3) picks: sd of the fraction 0.005, so 0.03 is 6 sd
    assert abs(from_first.mean() - 0.3) < 0.03
    # one seed, one set of member draws: the ones sample picks from, member_draws and the
    # disagreement computed from them
    _, stacked = weighted.sample_with_members(num_samples=4000, conditions=cond, seed=7)
    members = weighted.member_draws(num_samples=4000, conditions=cond, seed=7)
    np.testing.assert_array_equal(members["theta"], stacked["theta"])
    np.testing.assert_array_equal(members["theta"][1], own[1])
    a = weighted.disagreement(num_samples=4000, conditions=cond, seed=7)
    b = weighted.sample_and_disagreement(num_samples=4000, conditions=cond, seed=7)[1]
    np.testing.assert_array_equal(a.disagreement, b.disagreement)


def test_sample_and_log_prob_agrees_with_log_prob_of_draws(trained):
    ensemble, _ = trained
    cond = {"x": np.array([[0.4]])}
    draws, lq = ensemble.sample_and_log_prob(num_samples=100, conditions=cond, seed=3)
    np.testing.assert_allclose(
        lq, ensemble.log_prob_of_draws(draws=draws, conditions=cond), rtol=1e-6
    )


def test_save_load_round_trip(trained, tmp_path):
    ensemble = EnsembleApproximator(trained[0].members, weights=[0.4, 0.6])
    path = ensemble.save(tmp_path / "ens.amz")
    again = EnsembleApproximator.load(path)
    np.testing.assert_allclose(again.weights, [0.4, 0.6])
    cond = {"x": np.array([[0.4], [1.2]])}
    np.testing.assert_array_equal(
        again.sample(num_samples=300, conditions=cond, seed=4)["theta"],
        ensemble.sample(num_samples=300, conditions=cond, seed=4)["theta"],
    )
    (tmp_path / "bad.amz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFileError, match="corrupted or truncated"):
        EnsembleApproximator.load(tmp_path / "bad.amz")
    with pytest.raises(ModelFileError, match="EnsembleApproximator.load"):
        load_approximator(path)
    assert isinstance(bf.load(path), bf.EnsembleWorkflow)  # an ensemble file is a workflow
    import json
    import zipfile

    with zipfile.ZipFile(tmp_path / "newer.amz", "w") as zf:
        zf.writestr(
            "ensemble.json",
            json.dumps({"format": "amortized-ensemble", "format_version": 99, "members": []}),
        )
    with pytest.raises(ModelFileError, match="Upgrade amortized"):
        EnsembleApproximator.load(tmp_path / "newer.amz")


def test_bad_input():
    m = _member()
    with pytest.raises(ValueError, match="empty"):
        EnsembleApproximator([])
    with pytest.raises(TypeError, match="list of ContinuousApproximator"):
        EnsembleApproximator(m)
    with pytest.raises(TypeError, match=r"approximators\[1\]"):
        EnsembleApproximator([m, "flow"])
    with pytest.raises(ValueError, match="appears twice"):
        EnsembleApproximator([m, m])
    with pytest.raises(ValueError, match="2 finite non-negative"):
        EnsembleApproximator([m, _member()], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="2 finite non-negative"):
        EnsembleApproximator([m, _member()], weights=[1.0])
    with pytest.raises(TypeError, match="accepted"):
        EnsembleApproximator([m], weight=[1.0])
    with pytest.raises(RuntimeError, match="member 0 is not trained"):
        EnsembleApproximator([m]).save("unused.amz")
    with pytest.raises(RuntimeError, match="sample"):
        EnsembleApproximator([m]).sample(num_samples=5, conditions={"x": np.zeros((1, 1))})
