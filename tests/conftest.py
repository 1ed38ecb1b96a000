"""Shared fixtures. JAX runs strictly (rank promotion raises, float32 stays the default):
the repository's root conftest.py sets that for the tests and the doctests alike."""

import numpy as np
import pytest

from amortized._mappings import clear_if_crowded
from amortized.simulators.benchmarks import SBIBM_ENV, SBIBM_HOW, sbibm_root


@pytest.fixture(autouse=True)
def _room_for_compiled_programs():
    """After each test, clear JAX's caches once a worker holds 30% of the system's memory
    mappings: a worker compiles thousands of programs, about a dozen mappings each, and at
    the limit (vm.max_map_count) XLA's compiler crashed the worker with a segmentation fault
    (amortized._mappings; the library's own check in ``fit`` clears at 50%, with a warning,
    which a test would see; this one clears silently)."""
    yield
    clear_if_crowded(0.3)


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


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups on a worker
def pytest_collection_modifyitems(config, items):
    """Keep the tests of a module that share a module-scoped fixture on one xdist worker
    (``--dist loadgroup`` in pyproject.toml): the fixture then trains or runs its child
    process once, where plain ``load`` distribution ran it once per worker (up to 55 s
    each)."""
    for item in items:
        defs = getattr(item, "_fixtureinfo", None)
        if defs is None:
            continue
        module = item.nodeid.split("::")[0]
        shared = any(
            d.scope == "module" and d.baseid == module
            for fixturedefs in defs.name2fixturedefs.values()
            for d in fixturedefs
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(module))
