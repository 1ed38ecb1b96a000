"""Shared fixtures. JAX runs strictly (rank promotion raises, float32 stays the default):
the repository's root conftest.py sets that for the tests and the doctests alike."""

import numpy as np
import pytest

from amortized.simulators.benchmarks import SBIBM_ENV, SBIBM_HOW, sbibm_root


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def sbibm_path():
    """The sbibm reference folder named by AMORTIZED_SBIBM (skip where it is not given)."""
    try:
        root = sbibm_root()
    except FileNotFoundError as err:  # AMORTIZED_SBIBM names a folder this machine lacks
        pytest.skip(str(err))
    if root is None:
        pytest.skip(f"sbibm reference data not given ({SBIBM_ENV} unset): {SBIBM_HOW}")
    return root
