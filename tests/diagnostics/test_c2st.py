import numpy as np
import pytest
from scipy import stats

from amortized.diagnostics import c2st


def test_c2st_same_and_separated():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1000, 2)), rng.normal(size=(1000, 2))
    # identical distributions: accuracy 0.5 with fold noise ~ sqrt(.25 / 2000) ~ 0.011
    assert abs(c2st(a, b) - 0.5) < 0.05
    # means 4 sd apart: Bayes accuracy Phi(2) = 0.977
    assert c2st(a, b + np.array([4.0, 0.0])) > 0.95


def test_c2st_bad_input():
    with pytest.raises(ValueError, match="same dim"):
        c2st(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        c2st(np.zeros((10, 2)), np.full((10, 2), np.nan))


def _scale_bayes_accuracy(dim: int, sd: float) -> float:
    """Bayes accuracy between N(0, I) and N(0, sd^2 I), equal sizes: the optimal rule calls
    x reference when |x|^2 < c = 2 dim log(sd) sd^2 / (sd^2 - 1)."""
    c = 2 * dim * np.log(sd) * sd**2 / (sd**2 - 1)
    return 0.5 * (stats.chi2.cdf(c, dim) + stats.chi2.sf(c / sd**2, dim))


@pytest.mark.parametrize("case", ["shift", "scale"])
def test_jax_classifier_matches_sklearn_and_bayes_accuracy(case):
    # references: scikit-learn's MLPClassifier on the same folds, and the Bayes accuracy
    # (the best any classifier can do). Both score the same 2,000 held-out labels (binomial
    # sd 0.011 around the Bayes accuracy) and differ only in initialization and shuffling:
    # over seeds 1-3 the two differed by <= 0.006, so 0.025 fails a classifier that trains
    # differently, not noise; the Bayes bounds are ~3 binomial sd.
    rng = np.random.default_rng(1)
    a = rng.normal(size=(1000, 2))
    if case == "shift":
        b = rng.normal(size=(1000, 2)) + np.array([1.5, 0.0])
        bayes = stats.norm.cdf(0.75)
    else:
        b = 2.0 * rng.normal(size=(1000, 2))
        bayes = _scale_bayes_accuracy(2, 2.0)
    fast = c2st(a, b, classifier="jax")
    reference = c2st(a, b, classifier="sklearn")
    assert abs(fast - reference) < 0.025, (fast, reference)
    assert bayes - 0.04 < fast < bayes + 0.035, (fast, bayes)


def test_jax_classifier_chance_level_and_stopping_rule():
    from amortized.diagnostics._classifier import mlp_classifier_accuracy

    rng = np.random.default_rng(2)
    x = rng.normal(size=(1100, 3))
    y = (np.arange(1100) % 2).astype(float)
    # labels independent of x: held-out accuracy is chance, 0.5 +- 0.09 (3 sd of 300 labels)
    accuracy, epochs = mlp_classifier_accuracy(x[:800], y[:800], x[800:], y[800:], (30, 30), 0)
    assert abs(accuracy - 0.5) < 0.09
    # 800 = 4 batches of 200; the loss keeps falling as the net memorizes noise, but the
    # stopping rule ends training well before the cap
    assert 11 < epochs < 10_000
    _, capped = mlp_classifier_accuracy(x[:850], y[:850], x[850:], y[850:], (30, 30), 0, 5)
    assert capped == 5


def test_c2st_unknown_classifier():
    with pytest.raises(ValueError, match="classifier must be one of"):
        c2st(np.zeros((10, 2)), np.zeros((10, 2)), classifier="torch")


@pytest.mark.slow  # eight classifiers; c2st_many's doctest runs in the default suite
def test_c2st_many_matches_c2st_pair_by_pair():
    from amortized.diagnostics.c2st import c2st_many

    rng = np.random.default_rng(4)
    refs = [rng.normal(size=(400, 2)) for _ in range(3)]
    # same distribution, a 1-sd shift (Bayes accuracy Phi(0.5) = 0.69), separated
    approx = [
        rng.normal(size=(400, 2)),
        rng.normal(size=(400, 2)) + [1.0, 0.0],
        rng.normal(size=(400, 2)) + 4.0,
    ]
    # 801 points: folds of 160 and 161 test points, so two compiled shapes are exercised
    approx[1] = np.concatenate([approx[1], rng.normal(size=(1, 2)) + [1.0, 0.0]])
    batched = c2st_many(refs, approx)
    single = np.array([c2st(r, a, classifier="jax") for r, a in zip(refs, approx, strict=True)])
    # same folds, seeds and training: equal up to float32 order-of-operations effects
    # between a batched and a single program, at most a point or two of 160 per fold
    np.testing.assert_allclose(batched, single, atol=0.01)
    assert batched[0] < 0.6 and 0.6 < batched[1] < 0.78 and batched[2] > 0.97
    with pytest.raises(ValueError, match="equally long"):
        c2st_many(refs, approx[:2])
