"""BayesFlow's names for metrics and plots: BayesFlow's arguments and result dicts, the same
numbers as the library's own functions (one implementation behind both names), and the
numbers themselves against analytic values."""

import numpy as np
import pytest
from matplotlib.figure import Figure

import amortized as bf
from amortized.diagnostics import metrics, plots


@pytest.fixture(scope="module")
def exact():
    # an exact posterior by construction: theta ~ N(0, 1), x | theta ~ N(theta, 0.5^2), so
    # theta | x ~ N(0.8 x, 0.2); contraction 1 - 0.2 = 0.8, z-scores N(0, 1)
    rng = np.random.default_rng(11)
    n, s = 400, 500
    theta = rng.normal(size=(n, 2))
    x = theta + 0.5 * rng.normal(size=(n, 2))
    draws = 0.8 * x[:, None, :] + np.sqrt(0.2) * rng.normal(size=(n, s, 2))
    return {"a": draws[..., :1], "b": draws[..., 1:]}, {"a": theta[:, :1], "b": theta[:, 1:]}


def test_metric_dicts_match_the_library_and_the_analytic_values(exact):
    est, tgt = exact
    out = metrics.posterior_contraction(estimates=est, targets=tgt, variable_keys=["a", "b"])
    assert set(out) == {"values", "metric_name", "variable_names"}
    assert out["variable_names"] == ["a", "b"]
    # contraction 0.8 exactly; the prior variance is estimated from 400 draws (sd ~7%)
    np.testing.assert_allclose(out["values"], 0.8, atol=0.03)
    np.testing.assert_allclose(out["values"], bf.diagnostics.posterior_contraction(est, tgt).values)
    z = metrics.posterior_z_score(est, tgt, aggregation=np.mean)["values"]
    # mean of 400 N(0, 1) z-scores: sd 0.05; 4 sd
    assert np.all(np.abs(z) < 0.2)
    ce = metrics.calibration_error(est, tgt)["values"]
    np.testing.assert_allclose(ce, bf.diagnostics.calibration_error(est, tgt).values)
    assert np.all(ce < 2 * 0.5 / np.sqrt(400))  # twice the noise floor of an exact posterior
    lg = metrics.calibration_log_gamma(est, tgt, variable_keys="a")
    np.testing.assert_allclose(lg["values"], bf.diagnostics.log_gamma(est["a"], tgt["a"]).values)
    rmse = metrics.root_mean_squared_error(est, tgt, normalize=False)
    # E (theta_s - theta)^2 = Var(post) + Var(mean error) = 0.2 + 0.2 = 0.4
    np.testing.assert_allclose(rmse["values"], np.sqrt(0.4), rtol=0.05)
    assert rmse["metric_name"] == "RMSE"
    nrmse = metrics.root_mean_squared_error(est, tgt)["values"]
    np.testing.assert_allclose(nrmse, bf.diagnostics.nrmse(est, tgt).values)
    # the library's own metrics read like BayesFlow's dicts too
    assert bf.diagnostics.calibration_error(est, tgt)["metric_name"] == "calibration_error"


def test_unknown_keys_and_arguments_raise(exact):
    est, tgt = exact
    with pytest.raises(KeyError, match=r"\['c'\] not in estimates"):
        metrics.posterior_contraction(est, tgt, variable_keys=["c"])
    with pytest.raises(TypeError, match="unexpected keyword"):
        metrics.posterior_contraction(est, tgt, variable_key=["a"])
    with pytest.raises(ValueError, match="mlp_widths"):
        metrics.classifier_two_sample_test(np.zeros((10, 2)), np.ones((10, 2)), mlp_widths=(8,))


def test_two_sample_tests_against_known_answers():
    rng = np.random.default_rng(3)
    same = metrics.classifier_two_sample_test(rng.normal(size=(400, 2)), rng.normal(size=(400, 2)))
    apart = metrics.classifier_two_sample_test(
        rng.normal(size=(400, 2)), rng.normal(3.0, size=(400, 2))
    )
    # identical distributions: chance (sbibm protocol, 5 folds of 800 points: sd ~0.02);
    # means 3 sd apart in 2-D: nearly separable (Bayes accuracy Phi(3 sqrt(2) / 2) = 0.98)
    assert abs(same - 0.5) < 0.08 and apart > 0.95
    ref = rng.normal(size=(500, 2))
    obs_same, null = metrics.bootstrap_comparison(rng.normal(size=(50, 2)), ref, seed=0)
    obs_far, _ = metrics.bootstrap_comparison(rng.normal(2.0, size=(50, 2)), ref, seed=0)
    assert null.shape == (100,)
    assert obs_same < np.quantile(null, 0.99) < obs_far


def test_plots_take_bayesflow_arguments(exact):
    est, tgt = exact
    kw = {"estimates": est, "targets": tgt, "variable_keys": ["b"]}
    for fn in (
        plots.recovery,
        plots.calibration_ecdf,
        plots.calibration_histogram,
        plots.coverage,
        plots.z_score_contraction,
    ):
        fig = fn(**kw)
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title().split()[0] for ax in visible] == ["b"], fn.__name__
    assert isinstance(plots.pairs_posterior(est, tgt, dataset_id=3, variable_keys="a"), Figure)
    assert isinstance(plots.pairs_samples(tgt, variable_keys=["a", "b"]), Figure)
    assert isinstance(plots.loss({"loss": [2.0, 1.0]}, moving_average=True), Figure)
    assert isinstance(plots.mmd_hypothesis_test(np.linspace(0, 1, 50), 0.9), Figure)
    with pytest.raises(ValueError, match="pass dataset_id"):
        plots.pairs_posterior(est, tgt)
