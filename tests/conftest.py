"""Run JAX strictly: rank promotion raises, float32 stays the default."""

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", False)

SBIBM = (
    __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sbibm"
)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def sbibm_path():
    """The sbibm reference folder beside the checkout (skip where it is absent)."""
    if not SBIBM.exists():
        pytest.skip(f"sbibm reference data not found at {SBIBM}")
    return SBIBM
