"""Classifier-free guidance: conditions dropped at the asked rate and flagged, the guided
combination as defined, and the networks that take it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amortized.networks import DiffusionModel, FlowMatching
from amortized.networks.guidance import guided, training_conditions


def test_conditions_are_dropped_at_the_rate_and_flagged():
    cond = jnp.ones((20_000, 2))
    out = np.asarray(training_conditions(jax.random.key(0), cond, 0.3))
    keep = out[:, 2]
    # 20,000 Bernoulli(0.7) draws: sd of the share 0.0032, so 0.01 is three sd
    assert abs(keep.mean() - 0.7) < 0.01
    np.testing.assert_array_equal(out[:, :2], keep[:, None] * np.ones((1, 2)))
    assert training_conditions(jax.random.key(0), cond, 0.0) is cond


def test_guided_combines_conditional_and_unconditional_outputs():
    w = jnp.array([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]])  # a linear f of the input [c, flag]
    f = lambda c_in: w @ c_in  # noqa: E731
    ci = jnp.array([0.3, -0.7])
    cond_out = w @ jnp.array([0.3, -0.7, 1.0])
    none_out = jnp.zeros(2)
    np.testing.assert_allclose(guided(f, ci, 0.2, 0.0), cond_out)
    np.testing.assert_allclose(guided(f, ci, 0.2, 1.5), 2.5 * cond_out - 1.5 * none_out)
    np.testing.assert_allclose(guided(lambda c: c, ci, 0.0, 0.0), ci)


@pytest.mark.parametrize("cls", [FlowMatching, DiffusionModel])
def test_networks_take_guidance_and_refuse_it_without_conditions(cls):
    sub = {"subnet_kwargs": {"widths": [8]}, "integrate_kwargs": {"steps": 4}}
    plain = cls(drop_cond_prob=0.2, **sub).build(2, 1, jax.random.key(0))
    sharp = cls(drop_cond_prob=0.2, guidance_scale=2.0, **sub).build(2, 1, jax.random.key(0))
    c = jnp.ones((3, 1))
    a, b = plain.sample(jax.random.key(1), c), sharp.sample(jax.random.key(1), c)
    assert a.shape == b.shape == (3, 2) and not np.allclose(a, b)
    assert np.isfinite(float(plain.loss(jnp.zeros((3, 2)), c, jax.random.key(2))))
    with pytest.raises(ValueError, match="guidance_scale.*drop_cond_prob > 0"):
        cls(guidance_scale=1.0)
    with pytest.raises(ValueError, match="drop_cond_prob must be in"):
        cls(drop_cond_prob=1.0)
    with pytest.raises(ValueError, match="drops conditions.*has none"):
        cls(drop_cond_prob=0.1, **sub).build(2, 0, jax.random.key(0))
