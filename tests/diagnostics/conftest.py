import numpy as np
import pytest


def conjugate(n: int, s: int, seed: int, scale: float = 1.0, shift: float = 0.0):
    """theta ~ N(0, 1) (2-D), y ~ N(theta, 1): the posterior is N(y / 2, 1 / 2) per
    coordinate. Returns draws of that posterior with its sd multiplied by ``scale`` and its
    mean moved by ``shift`` posterior sds, and the true values."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(n, 2))
    y = theta + rng.normal(size=(n, 2))
    sd = np.sqrt(0.5)
    draws = y[:, None, :] / 2 + sd * (scale * rng.normal(size=(n, s, 2)) + shift)
    return {"theta": draws}, {"theta": theta}


@pytest.fixture
def posterior():
    return conjugate
