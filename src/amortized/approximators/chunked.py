"""Compiled, chunked passes of a trained approximator over any number of datasets.

A request of any size runs as calls of at most ``SAMPLE_CHUNK`` rows (draws times
datasets), each padded to a power-of-two number of datasets so that a session compiles a
handful of programs whatever sizes it is asked for; the draws of a chunk are split over the
local devices (:mod:`amortized.training.parallel`). Pure functions of ``(nets, stats)`` and
network arrays; the adapter and the user's space are the approximator's business.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import numpy as np
from tqdm.auto import tqdm

from ..training import parallel
from . import core
from .core import Networks
from .inputs import rows
from .standardization import Stats

SAMPLE_CHUNK = 2**17  # rows per compiled sampling call: bounds memory for any request


def _bucket(n: int, cap: int) -> int:
    """The next power of two >= n (capped), so that sampling compiles a handful of times."""
    return min(cap, 1 << max(0, int(n - 1).bit_length()))


def row_chunk(tree, start: int, stop: int, cap: int):
    """Rows ``start:stop`` of every array in ``tree``, padded to a power-of-two bucket (at most
    ``cap``) so that chunked calls compile a handful of times; returns ``(chunk, size)``."""
    size = _bucket(stop - start, cap)
    # sliced and padded in NumPy: eager JAX slices would compile a small program for every
    # new number of datasets, and a long session would pile them up
    return jax.tree.map(lambda v: _pad_rows(np.asarray(v)[start:stop], size), tree), size


def _pad_rows(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` with its last row repeated up to ``size`` rows."""
    if a.shape[0] == size:
        return a
    pad = np.broadcast_to(a[-1:], (size - a.shape[0],) + a.shape[1:])
    return np.concatenate([a, pad], axis=0)


@eqx.filter_jit
def _draw_chunk(sampler, nets, stats, key, cond_batch, num_datasets, num_samples, devices):
    """``sampler`` (:func:`core.sample` or :func:`core.sample_and_log_prob`) on one chunk of
    datasets, its draws split over ``devices``."""

    def draw(inputs, k, s):
        nets_, stats_, cond_ = inputs
        return sampler(nets_, stats_, k, cond_, num_datasets, s)

    return parallel.draws(draw, (nets, stats, cond_batch), key, num_samples, devices)


@eqx.filter_jit
def log_prob(nets, stats, batch):
    """Compiled :func:`core.log_prob`."""
    return core.log_prob(nets, stats, batch)


@eqx.filter_jit
def _log_prob_draws(nets, stats, cond_batch, x):
    return core.log_prob_draws(nets, stats, cond_batch, x)


@eqx.filter_jit
def summaries(nets, stats, batch):
    """Compiled :func:`core.summaries`."""
    return core.summaries(nets, stats, batch)


@eqx.filter_jit
def embed(nets, stats, batch):
    """What the inference network is conditioned on (compiled :func:`core.conditions`)."""
    return core.conditions(nets, stats, batch, jax.tree.leaves(batch)[0].shape[0])


@eqx.filter_jit
def features(nets, stats, batch):
    """What the regression adjustment regresses on (compiled
    :func:`core.adjustment_features`)."""
    return core.adjustment_features(nets.summary, stats, batch)


def draw(
    nets: Networks,
    stats: Stats,
    arrays: dict,
    num_datasets: int,
    num_samples: int,
    key: jax.Array,
    *,
    with_log_prob: bool,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Network-space draws ``(num_datasets, num_samples, *event)`` for the conditions
    ``arrays`` (empty for an unconditional density), and their log q ``(num_datasets,
    num_samples)`` (float64) when ``with_log_prob``, else None. Each chunk gets its own key
    split from ``key``; a progress bar shows on a terminal when there is more than one."""
    per_call = max(1, SAMPLE_CHUNK // num_samples)
    out, log_q = [], []
    starts = range(0, num_datasets, per_call)
    show = progress and len(starts) > 1 and sys.stderr.isatty()
    sampler = core.sample_and_log_prob if with_log_prob else core.sample
    devices = parallel.sampling_devices()
    for start in tqdm(starts, desc="sampling", unit="chunk", disable=not show):
        stop = min(num_datasets, start + per_call)
        chunk, size = row_chunk(arrays, start, stop, per_call)
        key, sub = jax.random.split(key)
        res = _draw_chunk(sampler, nets, stats, sub, chunk, size, num_samples, devices)
        if with_log_prob:
            res, lp = res
            log_q.append(np.asarray(lp, np.float64)[: stop - start])
        out.append(np.asarray(res)[: stop - start])
    z = np.concatenate(out, axis=0)
    return z, (np.concatenate(log_q, axis=0) if with_log_prob else None)


def log_prob_draws(nets: Networks, stats: Stats, arrays: dict, x: jax.Array) -> np.ndarray:
    """log q of network-space draws ``x`` ``(num_datasets, S, *event)`` given the
    conditions ``arrays`` (one summary pass per dataset), ``(num_datasets, S)`` float64."""
    n, s = x.shape[:2]
    if arrays and rows(arrays) != n:
        raise ValueError(
            f"log_prob_of_draws: draws hold {n} datasets but conditions hold {rows(arrays)}"
        )
    per_call = max(1, SAMPLE_CHUNK // s)
    out = []
    for start in range(0, n, per_call):
        stop = min(n, start + per_call)
        (chunk, xs), _ = row_chunk((arrays, x), start, stop, per_call)
        lp = _log_prob_draws(nets, stats, chunk, xs)
        out.append(np.asarray(lp, np.float64)[: stop - start])
    return np.concatenate(out, axis=0)
