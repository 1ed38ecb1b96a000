"""The check for room for more compiled programs clears JAX's caches past its threshold."""

import jax
import jax.numpy as jnp
import pytest

from amortized._mappings import process_mappings, relieve_mappings


def test_past_the_threshold_the_caches_are_cleared_with_a_warning():
    held = process_mappings()
    if held is None:
        pytest.skip("the system does not report memory mappings (not Linux)")
    f = jax.jit(lambda x: jnp.sin(x) * 3.0)
    f(jnp.ones(3))
    assert f._cache_size() == 1
    # well under the limit: nothing happens
    assert relieve_mappings("here", clear_at=1.0) is False
    assert f._cache_size() == 1
    # any process holds some mappings, so a threshold of 0 is passed
    with pytest.warns(RuntimeWarning, match=r"here: this process held [\d,]+ memory mappings"):
        assert relieve_mappings("here", clear_at=0.0) is True
    assert f._cache_size() == 0
    # and the function still runs (it compiles again)
    assert float(f(jnp.zeros(3))[0]) == 0.0
