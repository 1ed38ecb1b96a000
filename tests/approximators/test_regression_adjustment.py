"""The linear regression adjustment of the targets on the direct conditions."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import amortized as bf
from amortized.approximators import core
from amortized.approximators import regression_adjustment as ra
from amortized.approximators.parts import adjustable
from amortized.approximators.serialization import load_approximator, save_approximator


def test_fit_is_least_squares_and_the_residual_map_is_exact():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(4000, 3))
    w = np.array([[1.0, 0.0], [-2.0, 0.5], [0.3, 0.0]])
    z = c @ w + np.array([0.2, -0.1]) + rng.normal(size=(4000, 2)) * np.array([0.1, 0.7])
    coef, scale = ra.fit(z, c)
    design = np.concatenate([c, np.ones((4000, 1))], axis=1)
    reference, *_ = np.linalg.lstsq(design, z, rcond=None)
    # the ridge penalty (1e-3 per row against each column's unit mean square) shrinks the
    # slopes by about 0.1%: 3e-3 on slopes of up to 2
    np.testing.assert_allclose(coef, reference, atol=3e-3)
    # residual sd of 4000 normal draws: relative SE 1.1%, tolerance 4 SE
    np.testing.assert_allclose(scale, [0.1, 0.7], rtol=0.045)

    # a pooled fit as saved before groups existed: (k + 1, dim) and (dim,)
    adj = (jnp.asarray(coef, jnp.float32), jnp.asarray(scale, jnp.float32))
    cj = jnp.asarray(c[:5], jnp.float32)
    zj = jnp.asarray(z[:5], jnp.float32)
    maps = ra.affine(adj, None, cj)
    r = ra.to_residual(maps, zj)
    np.testing.assert_allclose(ra.from_residual(maps, r), zj, atol=1e-5)
    jac = jax.jacobian(lambda zi: ra.to_residual(ra.affine(adj, None, cj[:1]), zi[None])[0])(zj[0])
    np.testing.assert_allclose(ra.log_det(maps)[0], np.log(abs(np.linalg.det(jac))), rtol=1e-5)
    # fit_groups without indicator columns: the same fit as one group
    (coef_g, scale_g), groups = ra.fit_groups(z, c)
    assert groups is None
    np.testing.assert_allclose(coef_g[0], coef)
    np.testing.assert_allclose(scale_g[0], scale)


def test_groups_by_indicator_columns_get_their_own_fit():
    # two universes told apart by a condition with two values (a standardized 0/1 code):
    # slope 1, sd 0.2 in one, slope -3, sd 1.5 in the other
    rng = np.random.default_rng(1)
    n = 4000
    u = rng.integers(0, 2, size=n).astype(float)
    x = rng.normal(size=n)
    z = np.where(u == 1, -3.0 * x + 1.5 * rng.normal(size=n), x + 0.2 * rng.normal(size=n))
    c = np.c_[x, 2.0 * u - 0.7]
    (coef, scale), groups = ra.fit_groups(z[:, None], c)
    patterns, mask = groups
    np.testing.assert_array_equal(mask, [0.0, 1.0])
    np.testing.assert_array_equal(patterns[:, 1], [-0.7, 1.3])
    # least squares within each group against np.linalg.lstsq (the ridge shrinks slopes by
    # about 0.1%; the indicator column is constant within a group, and the ridge sends its
    # coefficient to 0 where the intercept takes the level)
    for g, val in enumerate([0.0, 1.0]):
        rows = u == val
        design = np.c_[x[rows], np.ones(rows.sum())]
        ref, *_ = np.linalg.lstsq(design, z[rows], rcond=None)
        np.testing.assert_allclose(coef[g][[0, 2], 0] + [0, coef[g][1, 0] * c[rows][0, 1]],
                                   ref, atol=1e-2)  # fmt: skip
    # residual sd per group, about 2000 rows each: relative SE 1.6%, tolerance 4 SE
    np.testing.assert_allclose(scale[:, 0], [0.2, 1.5], rtol=0.065)

    adj = tuple(jnp.asarray(a, jnp.float32) for a in (coef, scale))
    grp = tuple(jnp.asarray(a, jnp.float32) for a in groups)
    cj = jnp.asarray(c[:6], jnp.float32)
    zj = jnp.asarray(z[:6, None], jnp.float32)
    maps = ra.affine(adj, grp, cj)
    np.testing.assert_array_equal(ra.group_of(grp, cj), u[:6].astype(int))
    np.testing.assert_allclose(ra.from_residual(maps, ra.to_residual(maps, zj)), zj, atol=1e-5)
    for i in range(6):  # each row's log det against the Jacobian of its own map
        jac = jax.jacobian(lambda zi, i=i: ra.to_residual(ra.affine(adj, grp, cj[i : i + 1]),
                                                          zi[None])[0])(zj[i])  # fmt: skip
        np.testing.assert_allclose(ra.log_det(maps)[i], np.log(abs(np.linalg.det(jac))),
                                   rtol=1e-5)  # fmt: skip


def test_groups_need_enough_rows_each():
    # a third pattern with 30 rows: too few for its own fit of 2 coefficients and an
    # intercept (10 per coefficient), so the fit is pooled
    c = np.c_[
        np.repeat([0.0, 1.0, 0.0], [2000, 2000, 30]), np.repeat([0.0, 0.0, 1.0], [2000, 2000, 30])
    ]
    c = np.c_[c, np.random.default_rng(0).normal(size=len(c))]
    assert ra.find_groups(c) is None
    assert ra.find_groups(c[:4000]) is not None


def test_where_the_adjustment_applies():
    assert adjustable(1000, 4)
    assert not adjustable(1000, 0)
    assert not adjustable(ra.ROWS_PER_COEFFICIENT * 5 - 1, 4)  # 4 features and the intercept
    net = bf.networks.CouplingFlow()
    with pytest.raises(TypeError, match="regression_adjustment must be True, False or None"):
        bf.ContinuousApproximator(inference_network=net, regression_adjustment="no")


def test_a_summary_networks_explicit_statistics_are_features():
    # a set through a DeepSet: the features are its moments [log N, mean, log sd] of the
    # standardized rows, over the observed rows only (padding left out)
    rng = np.random.default_rng(0)
    sv = rng.normal(size=(3, 6, 1)).astype(np.float32)
    mask = np.ones((3, 6), np.float32)
    mask[1, 4:] = 0.0
    summary = bf.networks.DeepSet(summary_dim=8).build((6, 1), jax.random.key(0))
    stats = {"summary_variables": (jnp.asarray([0.5]), jnp.asarray([2.0]))}
    batch = {"summary_variables": sv, "summary_mask": mask, "inference_conditions": sv[:, :2, 0]}
    feats = np.asarray(core.adjustment_features(summary, stats, batch))
    assert feats.shape == (3, 2 + 3)  # the direct conditions, then the moments
    np.testing.assert_array_equal(feats[:, :2], sv[:, :2, 0])
    rows = (sv[1, :4, 0] - 0.5) / 2.0
    np.testing.assert_allclose(
        feats[1, 2:], [np.log(4), rows.mean(), np.log(rows.std())], rtol=1e-4
    )


def _conjugate(n_obs: int = 5):
    # mu ~ N(0, 1), y_i ~ N(mu, 1): posterior N(sum y / (n + 1), 1 / (n + 1))
    return bf.make_simulator(
        [
            lambda: {"mu": np.random.normal(size=1)},
            lambda mu: {"y": mu + np.random.normal(size=n_obs)},
        ]
    )


#: a dataset near the prior predictive's centre and one 3.2 of its sd out (ybar 3.6)
TAIL = np.array([[0.5, -0.2, 1.0, 0.3, 0.0], [4.0, 3.0, 5.0, 2.5, 3.5]], np.float32)


def _check_tail_dataset(approx, mean_atol: float, sd_rtol: float):
    """Draws for :data:`TAIL` against the exact posteriors, and one-pass log q against a
    second pass over the same draws (equal to float32 rounding); the draws and the second
    pass's log q of the tail dataset's draws."""
    draws, lq = approx.sample_and_log_prob(conditions={"y": TAIL}, num_samples=1000, seed=2)
    again = approx.log_prob({"mu": draws["mu"][1], "y": np.repeat(TAIL[1:], 1000, axis=0)})
    np.testing.assert_allclose(lq[1], again, atol=2e-3)
    exact = stats.norm(TAIL.sum(axis=1) / 6, np.sqrt(1 / 6))
    np.testing.assert_allclose(draws["mu"][:, :, 0].mean(axis=1), exact.mean(), atol=mean_atol)
    np.testing.assert_allclose(draws["mu"][:, :, 0].std(axis=1), exact.std(), rtol=sd_rtol)
    return draws, again


@pytest.fixture(scope="module")
def adjusted_flow():
    sim = _conjugate()
    approx = bf.ContinuousApproximator(
        inference_network=bf.networks.CouplingFlow(),
        adapter=bf.Adapter.create_default("mu", "y"),
        regression_adjustment=True,
    )
    approx.fit(dataset=sim.sample(3000, seed=0), epochs=8, batch_size=64, seed=1, progress=False)
    return approx


def test_draws_and_densities_of_an_adjusted_flow(adjusted_flow, tmp_path):
    approx = adjusted_flow
    assert ra.KEY in approx.stats
    # the second dataset is 3.2 prior-predictive sd out (ybar 3.6), where 3000 simulations
    # are sparse. Exact posterior N(18 / 6, 1 / 6) (sd 0.41). With the adjustment, seeds 1-3
    # of this fit put the mean 0.01-0.035 off and the sd within 2%; without it 0.06-0.16 off
    # and 5-11% too narrow (seed 1: -0.076, 0.89). 1000 draws: Monte Carlo SE 0.013 on the
    # mean, 2.2% on the sd, so the tolerances are 2-3 SE beyond the adjusted fits' errors
    draws, again = _check_tail_dataset(approx, mean_atol=0.06, sd_rtol=0.07)

    path = tmp_path / "adjusted.zip"
    save_approximator(approx, path)
    loaded, _ = load_approximator(path)
    np.testing.assert_array_equal(loaded.stats[ra.KEY][0], approx.stats[ra.KEY][0])
    same = loaded.log_prob({"mu": draws["mu"][1], "y": np.repeat(TAIL[1:], 1000, axis=0)})
    np.testing.assert_allclose(same, again, atol=1e-5)


def test_point_estimates_use_it_by_default_and_flows_only_when_asked():
    net = bf.networks.PointNetwork("mean")
    assert bf.ScoringRuleApproximator(inference_network=net).regression_adjustment
    approx = bf.ScoringRuleApproximator(inference_network=net, regression_adjustment=False)
    assert not approx.regression_adjustment
    assert bf.ScoringRuleApproximator.from_parts(net, None, None, "all", approx.saved_state())
    wf = bf.BasicWorkflow(
        simulator=_conjugate(),
        inference_variables="mu",
        inference_conditions="y",
        regression_adjustment=True,
    )
    assert wf.approximator.regression_adjustment
    ratio = bf.BasicWorkflow(
        inference_network=bf.networks.RatioNetwork(),
        adapter=bf.Adapter.create_default("mu", "y"),
        regression_adjustment=True,
    )
    assert ratio.approximator.regression_adjustment
    flow = bf.BasicWorkflow(
        simulator=_conjugate(), inference_variables="mu", inference_conditions="y"
    )
    assert not flow.approximator.regression_adjustment


def test_a_set_is_adjusted_on_its_moments():
    # the conjugate model's five observations as a set through a DeepSet: the posterior mean
    # sum y / 6 is linear in the set's mean, one of the DeepSet's explicit statistics
    sim = _conjugate()
    approx = bf.ContinuousApproximator(
        inference_network=bf.networks.CouplingFlow(),
        summary_network=bf.networks.DeepSet(summary_dim=8),
        adapter=bf.Adapter()
        .as_set("y")
        .rename("mu", "inference_variables")
        .rename("y", "summary_variables"),
        regression_adjustment=True,
    )
    approx.fit(dataset=sim.sample(3000, seed=0), epochs=8, batch_size=64, seed=1, progress=False)
    # one group; log N, mean, log sd and the intercept
    assert approx.stats[ra.KEY][0].shape == (1, 3 + 1, 1)
    # as in the vector case above (without the adjustment this fit's tail dataset is 0.07
    # off and 23% too narrow); the set network's own error adds to the flow's, so 0.1 (a
    # quarter of the posterior sd) and 10%
    _check_tail_dataset(approx, mean_atol=0.1, sd_rtol=0.1)


def test_asking_for_it_where_it_cannot_apply_warns():
    # 40 rows and 5 conditions: fewer than 10 rows per coefficient. Asked for, it warns and
    # trains without; left to the class default (a point estimator), it stays quiet
    data = _conjugate().sample(40, seed=0)
    asked = bf.ContinuousApproximator(
        inference_network=bf.networks.CouplingFlow(),
        adapter=bf.Adapter.create_default("mu", "y"),
        regression_adjustment=True,
    )
    with pytest.warns(UserWarning, match=r"regression_adjustment=True does nothing.*5 feat"):
        asked.fit(dataset=data, epochs=1, batch_size=20, seed=1, progress=False)
    assert ra.KEY not in asked.stats
    point = bf.ScoringRuleApproximator(
        inference_network=bf.networks.PointNetwork("mean"),
        adapter=bf.Adapter.create_default("mu", "y"),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="regression_adjustment")
        point.fit(dataset=data, epochs=1, batch_size=20, seed=1, progress=False)
    assert ra.KEY not in point.stats
