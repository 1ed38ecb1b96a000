"""Predictive checks: statistics against NumPy, p-values against exact tail probabilities."""

import numpy as np
import pytest
from scipy import stats

from amortized.diagnostics.predictive import (
    default_statistics,
    evaluate_statistics,
    posterior_predictive_check,
    prior_predictive_check,
)


def test_default_statistics_match_numpy():
    rng = np.random.default_rng(0)
    data = {"y": rng.normal(size=(4, 30, 2)), "x": rng.normal(size=(4, 3))}
    st = default_statistics(data)
    assert set(st) == {f"y[{j}] {s}" for j in (0, 1) for s in ("mean", "sd", "min", "max")} | {
        "x[0]",
        "x[1]",
        "x[2]",
    }
    values = evaluate_statistics(st, data, "test")
    names = list(st)
    np.testing.assert_allclose(values[:, names.index("y[1] sd")], data["y"][:, :, 1].std(axis=1))
    np.testing.assert_allclose(values[:, names.index("y[0] max")], data["y"][:, :, 0].max(axis=1))
    np.testing.assert_allclose(values[:, names.index("x[2]")], data["x"][:, 2])


def test_posterior_predictive_p_values_are_tail_probabilities():
    # replicates N(0, 1): p = P(T_rep >= t) -> the normal survival function; 20,000
    # replicates give a Monte Carlo sd <= 0.0035, so 0.015 is 4 sd
    rng = np.random.default_rng(1)
    t = np.array([[-1.0], [0.3], [2.5]])
    check = posterior_predictive_check(rng.normal(size=(3, 20_000, 1)), t, ["t"])
    np.testing.assert_allclose(check.p_value[:, 0], stats.norm.sf(t[:, 0]), atol=0.015)
    assert check.flagged[:, 0].tolist() == [False, False, True]
    assert check.table().shape == (3, 1)


def test_ties_count_half_and_prior_check():
    rep = np.array([[0.0], [1.0], [1.0], [2.0]])
    check = prior_predictive_check(rep, np.array([[1.0]]), ["k"])
    # P(T > 1) = 1/4, P(T = 1) = 1/2: p = 1/4 + 1/4
    assert check.p_value[0, 0] == 0.5


def test_bonferroni_over_statistics():
    p = np.array([[0.02, 0.5, 0.5, 0.5], [0.001, 0.5, 0.5, 0.5]])
    rep = np.zeros((2, 10, 4))
    check = posterior_predictive_check(rep, np.zeros((2, 4)), list("abcd"))
    object.__setattr__(check, "p_value", p)
    # 0.02 is in the 0.025 tail of one statistic but not in the 0.05 / 8 tail of four
    assert check.flagged[:, 0].tolist() == [True, True]
    assert check.flagged_datasets.tolist() == [False, True]


def test_bad_statistics():
    data = {"y": np.zeros((3, 5, 1))}
    with pytest.raises(ValueError, match="statistic 'boom' failed"):
        evaluate_statistics({"boom": lambda d: d["z"]}, data, "check")
    with pytest.raises(ValueError, match=r"shape \(3,\), got \(3, 5, 1\)"):
        evaluate_statistics({"raw": lambda d: d["y"]}, data, "check")
    with pytest.raises(ValueError, match="not finite for 3 of 3"):
        evaluate_statistics({"nan": lambda d: np.full(3, np.nan)}, data, "check")
    with pytest.raises(ValueError, match="no numeric variable"):
        default_statistics({"s": np.array(["a", "b"])})
