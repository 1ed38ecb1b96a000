"""Docstring examples (collected from src/ as doctests) see ``np`` and ``bf``, as a user's
session would after ``import numpy as np`` and ``import amortized as bf``. The test suite's
strict JAX settings (tests/conftest.py) hold here too."""

import os

# One CPU device per test process: `import amortized` would split the CPU into one device per
# core, but the suite already runs one process per core (pytest -n 2), and results that use
# dropout depend on the device count, so tests see the same single device on every machine.
# tests/training/test_parallel.py checks the split in child processes.
os.environ.setdefault("AMORTIZED_CPU_DEVICES", "1")
# Most of the suite's time is XLA compiling small programs once; LLVM's backend optimizations
# are most of that and buy little on programs run a few times (benchmarks/LOG.md, session
# 15). Users' programs keep the default level; results agree within the tests' float32
# tolerances.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", False)


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import amortized as bf

    doctest_namespace["np"] = np
    doctest_namespace["bf"] = bf
