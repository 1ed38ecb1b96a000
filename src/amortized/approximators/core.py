"""Pure functions of a continuous approximator: loss, sample and log_prob on network keys.

``nets`` is a :class:`Networks` pytree (the trainable part); ``stats`` the standardization
statistics; ``batch`` a dict of float32 arrays under ``inference_variables`` ``(B, dim)``,
``inference_conditions`` ``(B, dim_c)`` and ``summary_variables`` ``(B, ...)``. Image
targets ``(B, H, W, C)`` (with conditions ``(B, dim_c)`` or a condition map ``(B, H, W,
D)``) are standardized per channel in their own shape and reach the inference network
flattened, ``(B, H W C)``; draws come back in the image shape (the network's
``event_shape``).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ..networks.base import InferenceNetwork
from ..networks.mlp import split_dropout_key
from . import regression_adjustment as ra
from .standardization import Stats, log_det, standardize, unstandardize

IV, IC, SV = "inference_variables", "inference_conditions", "summary_variables"
SM = "summary_mask"


class Networks(eqx.Module):
    """The trainable networks of an approximator."""

    inference: InferenceNetwork
    summary: Any = None


def adapted_inputs(adapter, batch) -> dict[str, jax.Array]:
    """The network inputs of ``batch`` (JAX arrays) through ``adapter``, traceable: what
    a neural likelihood or ratio evaluates inside a sampler's log density."""
    arrays = adapter.forward(batch, check_support=False)
    return {k: arrays[k] for k in (IV, IC, SV, SM) if k in arrays}


def _summary_input(stats: Stats, batch):
    """``summary_variables`` standardized, padded rows zeroed, and the mask (or None)."""
    x = standardize(stats, SV, batch[SV])
    mask = batch.get(SM)
    if mask is not None:
        # padded rows may hold anything (e.g. NaN-free fill values); zero them so that no
        # network sees extreme values even where the mask removes them afterwards
        if isinstance(x, dict):
            x = {n: _zero_padding(a, mask[n]) if n in mask else a for n, a in x.items()}
        else:
            x = _zero_padding(x, mask)
    return x, mask


def summaries(nets: Networks, stats: Stats, batch, key=None) -> jax.Array:
    """Learned summaries ``(B, summary_dim)`` of ``summary_variables``; rows where
    ``summary_mask`` ``(B, N)`` is 0 are padding the summary network ignores."""
    x, mask = _summary_input(stats, batch)
    keys = None if key is None else split_dropout_key(key, jax.tree.leaves(x)[0].shape[0])
    if mask is None:
        if keys is None:
            return jax.vmap(lambda xi: nets.summary(xi))(x)
        return jax.vmap(lambda xi, ki: nets.summary(xi, key=ki))(x, keys)
    if keys is None:
        return jax.vmap(lambda xi, mi: nets.summary(xi, mask=mi))(x, mask)
    return jax.vmap(lambda xi, mi, ki: nets.summary(xi, key=ki, mask=mi))(x, mask, keys)


def _zero_padding(x, mask):
    return x * mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)).astype(x.dtype)


def conditions(nets: Networks, stats: Stats, batch, batch_size: int, key=None) -> jax.Array:
    """Direct conditions and learned summaries concatenated: ``(B, cond_dim)``."""
    parts = []
    if IC in batch:
        c = standardize(stats, IC, batch[IC])
        parts.append(c.reshape(c.shape[0], -1))  # a condition map, flattened
    if nets.summary is not None:
        parts.append(summaries(nets, stats, batch, key))
    if not parts:
        return jnp.zeros((batch_size, 0), jnp.float32)
    return jnp.concatenate(parts, axis=-1)


def adjustment_features(summary, stats: Stats, batch) -> jax.Array:
    """What the regression adjustment regresses on, ``(B, k)``: the standardized direct
    conditions (flattened) and the summary network's explicit statistics of the
    standardized summary variables (none for a network without them); nothing learned."""
    parts = []
    if IC in batch:
        c = standardize(stats, IC, batch[IC])
        parts.append(c.reshape(c.shape[0], -1))
    if summary is not None and SV in batch:
        x, mask = _summary_input(stats, batch)
        if mask is None:
            explicit = jax.vmap(lambda xi: summary.explicit_statistics(xi))(x)
        else:
            explicit = jax.vmap(lambda xi, mi: summary.explicit_statistics(xi, mi))(x, mask)
        if explicit is not None:
            parts.append(explicit)
    if not parts:
        return jnp.zeros((jax.tree.leaves(batch)[0].shape[0], 0), jnp.float32)
    return jnp.concatenate(parts, axis=-1)


def row_maps(stats: Stats, features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each row's regression-adjustment map ``(shift, scale)``, each ``(B, dim)``, from its
    features ``(B, k)`` (:func:`adjustment_features`)."""
    return ra.affine(stats[ra.KEY], stats.get(ra.GROUPS_KEY), features)


def _adjustment(nets: Networks, stats: Stats, batch):
    """Each row's regression-adjustment map (:func:`row_maps`) where the model has one,
    else None."""
    if ra.KEY not in stats:
        return None
    return row_maps(stats, adjustment_features(nets.summary, stats, batch))


def _hide_rows(sv, mask, key, rate: float):
    """Hide each observed row with probability ``rate``; a dataset that would lose every row
    keeps its original mask."""
    if mask is None:
        mask = jnp.ones(sv.shape[:2], jnp.float32)
    keep = jax.random.bernoulli(key, 1.0 - rate, mask.shape).astype(mask.dtype)
    hidden = mask * keep
    return jnp.where(jnp.sum(hidden, axis=1, keepdims=True) > 0, hidden, mask)


def random_row_mask(batch, key, rate: float):
    """``batch`` with a ``summary_mask`` that also hides a random ``rate`` of the observed
    rows of ``summary_variables`` (training-time masking, so that the networks learn to
    work with missing observations); sources of a dict are masked independently."""
    sv, mask = batch[SV], batch.get(SM)
    if isinstance(sv, dict):
        keys = jax.random.split(key, len(sv))
        new = {
            n: _hide_rows(a, None if mask is None else mask.get(n), k, rate)
            for (n, a), k in zip(sorted(sv.items()), keys, strict=True)
        }
    else:
        new = _hide_rows(sv, mask, key, rate)
    return {**batch, SM: new}


def loss(
    nets: Networks,
    stats: Stats,
    batch,
    key,
    train: bool = True,
    step: jax.Array | None = None,
    mask_rate: float = 0.0,
) -> jax.Array:
    """Training loss; ``step`` is the optimizer step (for networks with a training schedule),
    ``mask_rate`` > 0 hides that fraction of the summary rows (train only)."""
    if train and mask_rate > 0 and SV in batch:
        key, k_mask = jax.random.split(key)
        batch = random_row_mask(batch, k_mask, mask_rate)
    k_sum, k_inf = jax.random.split(key)
    x = batch[IV]
    cond = conditions(nets, stats, batch, x.shape[0], k_sum if train else None)
    z = _network_x(stats, x, _adjustment(nets, stats, batch))
    return nets.inference.loss(z, cond, k_inf, train, step)


def _network_x(stats: Stats, x: jax.Array, adjustment) -> jax.Array:
    """Inference variables ``(B, *event_shape)`` standardized and flattened, ``(B, dim)``,
    as the residual of the regression adjustment where the model has one (``adjustment``:
    each row's map, :func:`row_maps`; None without)."""
    z = standardize(stats, IV, x).reshape(x.shape[0], -1)
    if adjustment is not None:
        z = ra.to_residual(adjustment, z)
    return z


def _log_det(stats: Stats, event_shape: tuple[int, ...], adjustment) -> jax.Array:
    """log |d network_x / dx|: per-channel statistics apply at every pixel (a scalar); the
    regression adjustment's scale (vector targets only) once per row, ``(B,)``."""
    positions = 1
    for size in event_shape[:-1]:
        positions *= int(size)
    adjust = 0.0 if adjustment is None else ra.log_det(adjustment)
    return positions * log_det(stats, IV) + adjust


def _from_network(stats: Stats, nets: Networks, z: jax.Array, lead: tuple[int, ...], adjustment):
    """Network draws ``(prod(lead), dim)`` given each draw's adjustment map (:func:`row_maps`,
    ``(prod(lead), dim)`` each; None without an adjustment) back to ``(*lead,
    *event_shape)``, unstandardized."""
    event = nets.inference.event_shape
    if adjustment is not None:
        z = ra.from_residual(adjustment, z)
    return unstandardize(stats, IV, z.reshape(-1, *event)).reshape(*lead, *event)


def _repeat(adjustment, times: int):
    """Each dataset's adjustment map repeated for its ``times`` draws (None stays None)."""
    if adjustment is None:
        return None
    return jax.tree.map(lambda a: jnp.repeat(a, times, axis=0), adjustment)


def log_prob(nets: Networks, stats: Stats, batch) -> jax.Array:
    """log q(inference_variables | conditions) in adapter space, ``(B,)``."""
    x = batch[IV]
    cond = conditions(nets, stats, batch, x.shape[0])
    adjustment = _adjustment(nets, stats, batch)
    lp = nets.inference.log_prob(_network_x(stats, x, adjustment), cond)
    return lp + _log_det(stats, x.shape[1:], adjustment)


def log_prob_draws(nets: Networks, stats: Stats, cond_batch, x: jax.Array) -> jax.Array:
    """log q of draws ``x (num_datasets, num_samples, *event_shape)`` (adapter space) given
    each dataset's conditions, ``(num_datasets, num_samples)``: every dataset is embedded
    once, however many draws it has."""
    n, s = x.shape[:2]
    cond = jnp.repeat(conditions(nets, stats, cond_batch, n), s, axis=0)
    adjustment = _repeat(_adjustment(nets, stats, cond_batch), s)
    xs = _network_x(stats, x.reshape(n * s, *x.shape[2:]), adjustment)
    lp = nets.inference.log_prob(xs, cond)
    return (lp + _log_det(stats, x.shape[2:], adjustment)).reshape(n, s)


def sample(
    nets: Networks, stats: Stats, key, cond_batch, num_datasets: int, num_samples: int
) -> jax.Array:
    """Draws ``(num_datasets, num_samples, *event_shape)`` in adapter space (standardization
    undone)."""
    cond = conditions(nets, stats, cond_batch, num_datasets)
    cond = jnp.repeat(cond, num_samples, axis=0)
    z = nets.inference.sample(key, cond)
    adjustment = _repeat(_adjustment(nets, stats, cond_batch), num_samples)
    return _from_network(stats, nets, z, (num_datasets, num_samples), adjustment)


def sample_and_log_prob(
    nets: Networks, stats: Stats, key, cond_batch, num_datasets: int, num_samples: int
) -> tuple[jax.Array, jax.Array]:
    """Draws ``(num_datasets, num_samples, *event_shape)`` in adapter space and their log q
    ``(num_datasets, num_samples)`` there (standardization included)."""
    cond = conditions(nets, stats, cond_batch, num_datasets)
    cond = jnp.repeat(cond, num_samples, axis=0)
    z, lp = nets.inference.sample_and_log_prob(key, cond)
    adjustment = _repeat(_adjustment(nets, stats, cond_batch), num_samples)
    x = _from_network(stats, nets, z, (num_datasets, num_samples), adjustment)
    lp = lp + _log_det(stats, nets.inference.event_shape, adjustment)
    return x, lp.reshape(num_datasets, num_samples)
