"""Docstring examples (collected from src/ as doctests) see ``np`` and ``bf``, as a user's
session would after ``import numpy as np`` and ``import amortized as bf``. The test suite's
strict JAX settings (tests/conftest.py) hold here too."""

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", False)


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import amortized as bf

    doctest_namespace["np"] = np
    doctest_namespace["bf"] = bf
