"""Classifier-free guidance (Ho & Salimans 2022) for the continuous-time networks.

Training drops each example's condition with probability ``drop_cond_prob``: the network's
condition input becomes ``[c * keep, keep]`` with ``keep`` in {0, 1}, so "no condition" is
told apart from a condition that happens to be zero. At sampling, with scale ``w``, the
network's output is ``(1 + w) f(z, c) - w f(z, none)``; ``w = 0`` is the conditional model
itself, ``w > 0`` sharpens the draws towards the condition (they then no longer follow the
posterior: guidance trades calibration for fidelity, which suits images, not posteriors).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .image_field import make_field


def check_guidance(owner: str, drop_cond_prob: float, guidance_scale: float) -> None:
    if not 0.0 <= drop_cond_prob < 1.0:
        raise ValueError(f"{owner}: drop_cond_prob must be in [0, 1), got {drop_cond_prob!r}")
    if guidance_scale != 0.0 and drop_cond_prob == 0.0:
        raise ValueError(
            f"{owner}: guidance_scale={guidance_scale!r} needs an unconditional model, "
            f"trained with drop_cond_prob > 0 (got drop_cond_prob=0.0)"
        )


def guided_time_field(
    owner: str,
    dim: int,
    cond_dim: int,
    drop_cond_prob: float,
    subnet,
    subnet_options: dict,
    key: jax.Array | None,
    layout: tuple | None = None,
) -> eqx.Module:
    """The built network's field ``(dim + cond_dim [+ 1 keep flag]) -> dim`` (a TimeMLP, or
    an image backbone for an image ``layout``; :mod:`~amortized.networks.image_field`);
    dropping conditions needs conditions."""
    if key is None:
        raise ValueError(f"{owner}: building needs a PRNG key")
    if drop_cond_prob > 0 and cond_dim == 0:
        raise ValueError(
            f"{owner}: drop_cond_prob > 0 drops conditions, and this model has none "
            f"(nothing is routed to inference_conditions or summary_variables)"
        )
    width = cond_dim + 1 if drop_cond_prob > 0.0 else cond_dim
    return make_field(owner, dim, width, subnet, subnet_options, layout, key)


def training_conditions(key: jax.Array, cond: jax.Array, drop_cond_prob: float) -> jax.Array:
    """``(B, cond_dim)`` -> the network's input ``(B, cond_dim [+ 1])``, each row's condition
    dropped with probability ``drop_cond_prob``."""
    if drop_cond_prob == 0.0:
        return cond
    keep = jax.random.bernoulli(key, 1.0 - drop_cond_prob, (cond.shape[0], 1))
    keep = keep.astype(cond.dtype)
    return jnp.concatenate([cond * keep, keep], axis=1)


def guided(
    f: Callable[[jax.Array], jax.Array],
    ci: jax.Array,
    drop_cond_prob: float,
    guidance_scale: float,
) -> jax.Array:
    """``f(network condition input)`` for one example's raw condition ``ci`` ``(cond_dim,)``:
    ``f(ci)`` without guidance training, ``f([ci, 1])`` with it, and
    ``(1 + w) f([ci, 1]) - w f([0, 0])`` with a scale ``w``. Guiding the output commutes
    with any affine reading of it (the weights sum to one)."""
    if drop_cond_prob == 0.0:
        return f(ci)
    out = f(jnp.concatenate([ci, jnp.ones((1,), ci.dtype)]))
    if guidance_scale == 0.0:
        return out
    out_none = f(jnp.zeros((ci.shape[0] + 1,), ci.dtype))
    return (1.0 + guidance_scale) * out - guidance_scale * out_none
