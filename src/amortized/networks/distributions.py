"""Latent base distributions for normalizing flows (one example: a vector of size ``dim``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

BASE_DISTRIBUTIONS = ("normal", "student_t")


def base_log_prob(name: str, z: jax.Array, df: float) -> jax.Array:
    """log N(z; 0, I), or the multivariate Student-t with ``df`` degrees of freedom:
    lgamma((v+D)/2) - lgamma(v/2) - D/2 log(v pi) - (v+D)/2 log(1 + |z|^2 / v)."""
    d = z.shape[-1]
    sq = jnp.sum(z * z, axis=-1)
    if name == "normal":
        return -0.5 * sq - 0.5 * d * jnp.log(2.0 * jnp.pi)
    return (
        gammaln(0.5 * (df + d))
        - gammaln(0.5 * df)
        - 0.5 * d * jnp.log(df * jnp.pi)
        - 0.5 * (df + d) * jnp.log1p(sq / df)
    )


def base_sample(name: str, key: jax.Array, shape: tuple[int, ...], df: float) -> jax.Array:
    """Draws of shape ``(*shape)``; the last axis is the event dimension."""
    k1, k2 = jax.random.split(key)
    z = jax.random.normal(k1, shape)
    if name == "normal":
        return z
    g = 2.0 * jax.random.gamma(k2, 0.5 * df, shape[:-1] + (1,))  # chi-square(df)
    return z / jnp.sqrt(g / df)
