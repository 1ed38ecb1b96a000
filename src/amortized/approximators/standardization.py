"""Learned standardization of network inputs, computed from training data.

For each standardized key, ``mean`` and ``std`` are taken over every axis but the last
(features), so a set ``(batch, N, features)`` is standardized per feature. The statistics
are part of the trained approximator: they are saved with it and enter ``log_prob`` through
``-sum(log std)`` for the inference variables.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

Stats = dict[str, tuple[jnp.ndarray, jnp.ndarray]]
MIN_STD = 1e-6


def _feature_stats(x, mask=None):
    x = np.asarray(x, dtype=np.float64)
    if mask is not None:
        x = x[np.asarray(mask) > 0]
    x = x.reshape(-1, x.shape[-1])
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std < MIN_STD, 1.0, std)
    return jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)


def compute_stats(
    batch: Mapping[str, np.ndarray], keys, row_masks: Mapping[str, str] | None = None
) -> Stats:
    """Per-feature mean and standard deviation of each of ``keys`` present in ``batch``.

    Constant features get std 1 (not a near-zero divisor), so that e.g. a fixed design column
    passes through unchanged. ``row_masks`` ``{key: mask_key}``: rows of ``batch[key]``
    ``(B, N, ...)`` whose ``batch[mask_key]`` ``(B, N)`` is 0 are padding and do not count.
    A dict of sources under a key gets one entry per source, ``"key/source"``.
    """
    stats = {}
    for k in keys:
        if k not in batch:
            continue
        mask_key = (row_masks or {}).get(k)
        mask = batch.get(mask_key) if mask_key else None
        if isinstance(batch[k], Mapping):
            for name, a in batch[k].items():
                m = mask.get(name) if isinstance(mask, Mapping) else None
                stats[f"{k}/{name}"] = _feature_stats(a, m)
        else:
            stats[k] = _feature_stats(batch[k], mask)
    return stats


def _aligned(stats: Stats, key: str, x):
    """Mean and std with leading length-1 axes up to ``x``'s rank (strict rank promotion)."""
    mean, std = stats[key]
    shape = (1,) * (x.ndim - 1) + mean.shape
    return mean.reshape(shape), std.reshape(shape)


def standardize(stats: Stats, key: str, x):
    if isinstance(x, Mapping):
        return {n: standardize(stats, f"{key}/{n}", a) for n, a in x.items()}
    if key not in stats:
        return x
    mean, std = _aligned(stats, key, x)
    return (x - mean) / std


def unstandardize(stats: Stats, key: str, z):
    if key not in stats:
        return z
    mean, std = _aligned(stats, key, z)
    return z * std + mean


def log_det(stats: Stats, key: str):
    """log |d standardize / dx| summed over features."""
    if key not in stats:
        return jnp.zeros(())
    return -jnp.sum(jnp.log(stats[key][1]))
