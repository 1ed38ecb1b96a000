"""Amortized model comparison against exact Bayes factors: two normal models that differ
in the prior of the mean (analytic marginal likelihoods), trained with unequal model
frequencies so that the division by the training prior is tested too."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import amortized as bf
from amortized.scoring_rules import BrierScore, CrossEntropyScore, MeanScore

N_OBS = 10
PRIOR_SD = (0.5, 2.0)
TRAIN_P = (0.7, 0.3)


def _sim():
    def model(sd):
        return bf.make_simulator(
            [
                lambda: {"mu": np.random.normal(0.0, sd, size=1)},
                lambda mu: {"x": mu + np.random.normal(size=N_OBS)},
            ]
        )

    return bf.simulators.ModelComparisonSimulator([model(sd) for sd in PRIOR_SD], p=TRAIN_P)


def exact_log_bf(x):
    """log p(x | M1) - log p(x | M0): the sample mean is sufficient, xbar ~ N(0, sd^2 + 1/N)."""
    xbar = x.mean(axis=1)

    def log_normal(v):
        return -0.5 * np.log(2 * np.pi * v) - 0.5 * xbar**2 / v

    return log_normal(PRIOR_SD[1] ** 2 + 1 / N_OBS) - log_normal(PRIOR_SD[0] ** 2 + 1 / N_OBS)


@pytest.fixture(scope="module")
def trained():
    sim = _sim()
    wf = bf.ModelComparisonWorkflow(
        simulator=sim, inference_conditions="x", model_names=["narrow", "wide"]
    )
    data = sim.sample(10_000, seed=0)
    data.pop("mu")
    wf.fit_offline(data, seed=1, progress=False)
    test = sim.sample(3000, seed=2)
    test.pop("mu")
    return wf, test


def test_log_bayes_factors_and_probabilities_match_the_exact_ones(trained):
    wf, test = trained
    # the training frequencies are the data's label shares (close to TRAIN_P)
    np.testing.assert_allclose(wf.approximator.model_prior, TRAIN_P, atol=0.02)
    est = wf.estimate({"x": test["x"]})
    exact = exact_log_bf(test["x"])
    inside = np.abs(exact) < 5
    err = np.abs(est["log_bayes_factors"][:, 1] - exact)[inside]
    # benchmarks/model_comparison.py reaches 0.12 with 2x10^4 simulations; with half of
    # them and 3000 test datasets (standard error of the mean about 0.005) 0.3 leaves room
    # for the seed, while a classifier whose prior was not divided out would be off by
    # log(0.7 / 0.3) = 0.85 everywhere
    assert err.mean() < 0.3, err.mean()
    np.testing.assert_array_equal(est["log_bayes_factors"][:, 0], 0.0)
    # probabilities under the training prior, and under a uniform one on request
    log_odds = exact + np.log(TRAIN_P[1] / TRAIN_P[0])
    p_train = 1 / (1 + np.exp(-log_odds))
    assert np.mean(np.abs(est["model_probs"][:, 1] - p_train)) < 0.03
    uniform = wf.estimate({"x": test["x"]}, model_prior=[0.5, 0.5])["model_probs"][:, 1]
    assert np.mean(np.abs(uniform - 1 / (1 + np.exp(-exact)))) < 0.03
    np.testing.assert_allclose(est["model_probs"].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(wf.predict({"x": test["x"]}), est["model_probs"])


def test_diagnostics_and_report_of_a_calibrated_classifier(trained, tmp_path):
    wf, test = trained
    table = wf.compute_default_diagnostics(test)
    assert list(table.columns) == ["narrow", "wide", "all"]
    # the exact probabilities on these datasets (the reference): the network's ECE may
    # exceed their noise floor by the 0.03 of a "fair" rating at most
    assert table.loc["expected_calibration_error", "all"] < (
        table.loc["ece_if_calibrated", "all"] + 0.03
    )
    assert 0.75 < table.loc["accuracy", "all"] < 1.0
    assert np.sum(table.attrs["confusion_matrix"]) == len(test["x"])
    folder = wf.report(tmp_path / "rep", test_data=test)
    for name in ("loss", "calibration", "confusion_matrix"):
        assert (folder / f"{name}.png").stat().st_size > 0
    rep = json.loads((folder / "report.json").read_text())
    assert set(rep["ratings"]) == {"narrow", "wide", "all"}
    assert rep["ratings"]["wide"]["calibration"] in ("excellent", "fair")
    assert "predicted model probabilities" in (folder / "report.md").read_text()


def test_save_and_load_keep_the_estimates_and_the_training_prior(trained, tmp_path):
    wf, test = trained
    path = wf.save(tmp_path / "mc.amz")
    back = bf.load(path)
    assert isinstance(back, bf.ModelComparisonWorkflow)
    assert back.model_names == ["narrow", "wide"]
    np.testing.assert_allclose(back.approximator.model_prior, wf.approximator.model_prior)
    a = wf.estimate({"x": test["x"][:50]})["log_bayes_factors"]
    b = back.estimate({"x": test["x"][:50]})["log_bayes_factors"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="not a model comparison"):
        path2 = bf.BasicWorkflow(
            simulator=bf.simulators.benchmarks.gaussian_linear(),
            inference_variables="theta",
            inference_conditions="x",
        )
        d = path2.simulate(64, seed=0)
        path2.fit_offline(d, epochs=1, early_stopping=False, progress=False)
        bf.ModelComparisonWorkflow.load(path2.save(tmp_path / "post.amz"))


def test_what_a_classifier_cannot_do_is_refused_by_name(trained):
    wf, test = trained
    with pytest.raises(NotImplementedError, match="posterior model probabilities"):
        wf.sample(num_samples=10, conditions={"x": test["x"][:2]})
    with pytest.raises(NotImplementedError, match="log_prob"):
        wf.approximator.log_prob({"x": test["x"][:2]})
    with pytest.raises(ValueError, match="model_prior"):
        wf.estimate({"x": test["x"][:2]}, model_prior=[1.0, 0.0])


def test_labels_and_arguments_are_checked():
    sim = _sim()
    data = sim.sample(64, seed=0)
    data["model_indices"] = data["model_indices"] * 2.0
    wf = bf.ModelComparisonWorkflow(simulator=sim, inference_conditions="x")
    with pytest.raises(ValueError, match="one-hot model indices"):
        wf.fit_offline(data, epochs=1, progress=False)
    with pytest.raises(ValueError, match="num_models=3"):
        bf.ModelComparisonWorkflow(simulator=sim, num_models=3, inference_conditions="x")
    with pytest.raises(ValueError, match="never standardized"):
        bf.approximators.ModelComparisonApproximator(
            num_models=2, standardize=["inference_variables"]
        )
    with pytest.raises(TypeError, match="categorical"):
        bf.approximators.ModelComparisonApproximator(num_models=2, scoring_rules=MeanScore())
    with pytest.raises(TypeError, match="ModelComparisonApproximator"):
        bf.ScoringRuleApproximator(
            inference_network=bf.networks.ScoringRuleNetwork(
                scoring_rules={"m": CrossEntropyScore()}
            )
        )
    with pytest.raises(TypeError, match="mixes categorical"):
        bf.networks.ScoringRuleNetwork(scoring_rules={"m": CrossEntropyScore(), "v": MeanScore()})
    one = bf.simulators.ModelComparisonSimulator(
        [sim.simulators[0], sim.simulators[1]], p=[0.999, 0.001]
    ).sample(64, seed=0)
    one.pop("mu")
    with pytest.raises(ValueError, match=r"\['M1'\] never occur"):
        wf.fit_offline(one, epochs=1, progress=False)


@pytest.mark.parametrize("rule", [CrossEntropyScore(), BrierScore()])
def test_categorical_rules_are_minimized_by_the_class_frequencies(rule):
    # a constant prediction's expected score is minimized at the frequencies (strictly
    # proper); gradient zero at logits = log frequencies, to float32 precision
    freq = np.array([0.2, 0.5, 0.3])
    onehot = jnp.asarray(np.repeat(np.eye(3), (200, 500, 300), axis=0), jnp.float32)

    def mean_score(logits):
        stats = rule.statistics({"logits": jnp.broadcast_to(logits, (1000, 3))}, 3)
        return jnp.mean(rule.score(stats, onehot))

    g = jax.grad(mean_score)(jnp.asarray(np.log(freq), jnp.float32))
    np.testing.assert_allclose(g, 0.0, atol=1e-6)
    assert mean_score(jnp.log(jnp.asarray([0.3, 0.4, 0.3]))) > mean_score(jnp.log(freq))
