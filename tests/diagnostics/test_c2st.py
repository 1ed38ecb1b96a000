import numpy as np
import pytest

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
