"""The abstract summary network and the attention blocks the set and time-series networks share.

A summary network maps one dataset ``x`` of shape ``(N, features)`` (a set, or a series of
length N) to a vector ``(summary_dim,)``; the approximator vmaps it over datasets and trains
it jointly with the inference network. Like inference networks it is constructed from its
options and built once the input shape is known: ``build(input_shape, key)``.

``mask`` (``(N,)``, 1 for observed rows, 0 for padding) is accepted by every summary network
so that padded rows do not enter attention or pooling.
"""

from __future__ import annotations

import json
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .mlp import MLP


class SummaryNetwork(eqx.Module):
    config_json: str = eqx.field(static=True)
    input_shape: tuple = eqx.field(static=True)

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)

    @property
    def summary_dim(self) -> int:
        return int(self.config["summary_dim"])

    @property
    def is_built(self) -> bool:
        return bool(self.input_shape)

    def build(self, input_shape: tuple[int, ...], key: jax.Array) -> SummaryNetwork:
        if len(input_shape) != 2:
            raise ValueError(
                f"{type(self).__name__}: expects one dataset of shape (N, features), i.e. "
                f"summary_variables of shape (batch, N, features); got per-dataset shape "
                f"{tuple(input_shape)}. Use Adapter.as_set or as_time_series for (batch, N)."
            )
        return type(self)(**self.config, input_shape=tuple(int(s) for s in input_shape), key=key)

    def __call__(
        self, x: jax.Array, key: jax.Array | None = None, mask: jax.Array | None = None
    ) -> jax.Array:
        raise NotImplementedError  # abstract

    def explicit_statistics(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array | None:
        """The statistics of one dataset ``x`` that the network computes in closed form
        (no parameters), ``(num_statistics,)``, or None for a network without them: what a
        regression adjustment can regress on before training
        (:mod:`~amortized.approximators.regression_adjustment`)."""
        return None


def masked_mean(h: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Mean over rows of ``h`` ``(N, d)``, counting only rows where ``mask`` is 1."""
    if mask is None:
        return jnp.mean(h, axis=0)
    w = mask.astype(h.dtype)[:, None]
    return jnp.sum(h * w, axis=0) / jnp.maximum(jnp.sum(w), 1.0)


def own_scale(x: jax.Array, mask: jax.Array | None):
    """Put one series ``(T, features)`` on its own scale: ``(x - mean) / sd`` per feature over
    the observed steps; returns it with ``mean`` and ``log sd`` (each ``(features,)``), which
    carry the scale into the summary. Series whose scales differ by orders of magnitude then
    look alike to the network, so it can learn scale-free structure (autocorrelation)."""
    loc = masked_mean(x, mask)
    scale = jnp.sqrt(masked_mean((x - loc[None, :]) ** 2, mask) + 1e-6)
    return (x - loc[None, :]) / scale[None, :], loc, jnp.log(scale)


def root_mean_square(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    """``(features,)``: sqrt(mean of x^2) of a series ``(T, features)`` about zero, over
    the observed steps (a tiny floor keeps an all-zero series finite)."""
    return jnp.sqrt(masked_mean(x**2, mask) + 1e-12)


def log_length(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    """``(1,)``: log of the number of observed steps of a series ``(T, features)``. How much
    a series says about its parameters grows with its length (posterior sd ~ 1/sqrt(T)),
    which pooled features do not carry; the count is exact and padding-invariant."""
    n = x.shape[0] if mask is None else jnp.sum(mask.astype(x.dtype))
    return jnp.log(jnp.maximum(jnp.asarray(n, x.dtype), 1.0))[None]


def check_set_summary_dim(name: str, summary_dim: int) -> None:
    """Set summaries carry log N plus at least one learned number."""
    if int(summary_dim) < 2:
        raise ValueError(
            f"{name}: summary_dim must be at least 2 (log N and at least one learned "
            f"number), got {summary_dim}"
        )


#: Pairwise correlations join a set's moments up to this many features: their number grows
#: as features^2 (28 pairs for 8 features), and so does their cost per row.
MAX_CORRELATED_FEATURES = 8


def num_set_moments(features: int, moments: bool) -> int:
    """How many numbers :func:`set_moments` gives for rows of ``features`` numbers."""
    if not moments:
        return 1
    pairs = features * (features - 1) // 2 if features <= MAX_CORRELATED_FEATURES else 0
    return 1 + 2 * features + pairs


def set_moments(x: jax.Array, mask: jax.Array | None, moments: bool) -> jax.Array:
    """The explicit statistics of a set ``(N, features)`` over its observed rows: ``[log N,
    mean, log sd, correlations]`` (``(num_set_moments(features),)``; the correlations are
    the upper triangle of the features' correlation matrix, for at most
    ``MAX_CORRELATED_FEATURES`` features). With ``moments=False``: ``[log N]`` alone.

    Why: the first two moments are sufficient or nearly so for many models of exchangeable
    rows (location-scale, linear regression, ...), and their precision is what makes the
    posterior of a large set narrow (sd ~ 1/sqrt(N)). A network that pools learned row
    features approximates them and their ratios only roughly, so the exact numbers go to the
    summary unmixed, as the time-series networks do with their own statistics. The rows
    themselves enter the learned part unchanged: putting each set on its own scale first
    (as the time-series networks do) cost a two-component mixture held-out accuracy and
    gained nothing elsewhere (benchmarks/LOG.md, session 17)."""
    log_n = log_length(x, mask)
    if not moments:
        return log_n
    z, loc, log_scale = own_scale(x, mask)
    parts = [log_n, loc, log_scale]
    d = x.shape[-1]
    if 1 < d <= MAX_CORRELATED_FEATURES:
        i, j = jnp.triu_indices(d, 1)
        parts.append(masked_mean(z[:, i] * z[:, j], mask))
    return jnp.concatenate(parts)


def passed_moments(summary_dim: int, num_moments: int) -> int:
    """How many of a set's explicit statistics pass to the summary unmixed: all when
    ``summary_dim`` leaves room for at least one learned number beside them, else log N
    alone (the rest still feeds the head)."""
    return num_moments if int(summary_dim) > num_moments else 1


def set_head_sizes(features: int, summary_dim: int, moments: bool) -> tuple[int, int]:
    """A set network's head: how many explicit statistics it takes beside the pooled
    features (:func:`num_set_moments`) and how many numbers it outputs (``summary_dim``
    less those passed unmixed, :func:`passed_moments`)."""
    n = num_set_moments(features, moments)
    return n, int(summary_dim) - passed_moments(summary_dim, n)


def with_moments(
    x: jax.Array, mask: jax.Array | None, moments: bool, summary_dim: int, head, z, key
) -> jax.Array:
    """The summary of a set ``x`` ``(N, features)``: ``[e[:passed], head([z, e])]`` with
    ``z`` the pooled learned features, ``e`` the set's explicit statistics
    (:func:`set_moments`, log N first) and ``passed`` from :func:`passed_moments`. Pooling
    by a mean or by attention forgets how many rows were pooled, yet the posterior's width
    depends on it, so log N always passes unmixed."""
    explicit = set_moments(x, mask, moments)
    passed = passed_moments(summary_dim, explicit.shape[0])
    return jnp.concatenate([explicit[:passed], head(jnp.concatenate([z, explicit]), key)])


def _per_lag(x: jax.Array, mask: jax.Array | None, lags: int, stat, width: int = 1) -> jax.Array:
    """``stat(later, earlier, pair)`` ``(width * features,)`` at lags 1..``lags`` of a
    series ``(T, features)``, concatenated, ``(lags * width * features,)``: ``later =
    x[k:]``, ``earlier = x[:-k]`` and ``pair`` ``(T - k, 1)`` is 1 where both steps are
    observed; 0 for a lag beyond the series."""
    m = jnp.ones(x.shape[:1], x.dtype) if mask is None else mask.astype(x.dtype)
    out = []
    for k in range(1, int(lags) + 1):
        if k >= x.shape[0]:
            out.append(jnp.zeros((width * x.shape[1],), x.dtype))
            continue
        out.append(stat(x[k:], x[:-k], (m[k:] * m[:-k])[:, None]))
    return jnp.concatenate(out) if out else jnp.zeros((0,), x.dtype)


def autocorrelations(x: jax.Array, mask: jax.Array | None, lags: int) -> jax.Array:
    """Sample autocorrelations at lags 1..``lags`` of a series ``(T, features)`` already on
    its own scale (mean 0, sd 1 over observed steps), ``(lags * features,)``:
    ``r_k = sum_t x_t x_{t-k} / #pairs`` over pairs of observed steps (padding excluded;
    0 for a lag beyond the series). Second-order structure as exact numbers beside the
    learned features: products of lagged values are what convolutions with smooth
    activations approximate worst."""
    return _per_lag(
        x,
        mask,
        lags,
        lambda a, b, pair: jnp.sum(a * b * pair, axis=0) / jnp.maximum(jnp.sum(pair), 1.0),
    )


def lag_regressions(x: jax.Array, mask: jax.Array | None, lags: int, rms: jax.Array) -> jax.Array:
    """Least-squares regressions of a raw series ``(T, features)`` on its own lag k about
    zero, ``(2 * lags * features,)``: per lag ``[b_k, log s_k]`` with the coefficient
    ``b_k = sum_t y_t y_{t-k} / sum_t y_{t-k}^2`` and the residual scale
    ``s_k = sqrt(mean_t (y_t - b_k y_{t-k})^2)`` over pairs of observed steps (0 for a lag
    beyond the series). The coefficients are the autocorrelations with the series' level
    kept instead of its mean taken out: for a process anchored at zero (an AR series
    started at y_0 = 0, a random walk) the mean is part of the signal, and on a short series
    the sample mean absorbs much of a persistent excursion, pulling the centered
    autocorrelation towards zero or below, while ``b_1`` is the least-squares estimate of
    an AR(1)'s coefficient. The residual scale is the innovation scale such a fit implies,
    ``s_k^2 = mean y_t^2 - b_k^2 mean y_{t-k}^2``: near a unit root (``|b_k|`` near 1) a
    difference of nearly equal numbers, which a network learns badly from the rms and
    ``b_k`` alone where simulations are sparse. ``rms`` ``(features,)``: the series'
    :func:`root_mean_square`, which the caller also reports."""

    def fit(a, b, pair):
        coef = jnp.sum(a * b * pair, axis=0) / jnp.maximum(jnp.sum(b**2 * pair, axis=0), 1e-6)
        resid = jnp.sum((a - coef[None, :] * b) ** 2 * pair, axis=0)
        resid = resid / jnp.maximum(jnp.sum(pair), 1.0)
        # on the series' own scale; the floor keeps an exactly fitted series finite
        return jnp.concatenate([coef, 0.5 * jnp.log(resid + 1e-12) + jnp.log(rms)])

    # on the series' own root-mean-square scale, so that the sums stay in float32's range
    return _per_lag(x / rms[None, :], mask, lags, fit, width=2)


def series_ends(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    """The first and the last observed step of a series ``(T, features)``, ``(2 * features,)``.
    An autoregressive likelihood's sums of lagged products differ from the sums of squares
    by these boundary terms (sum_{t<T} y_t^2 = sum_t y_t^2 - y_T^2), which matter for short
    series and which averages over time dilute."""
    if mask is None:
        return jnp.concatenate([x[0], x[-1]])
    m = mask > 0
    first = jnp.argmax(m)
    last = x.shape[0] - 1 - jnp.argmax(m[::-1])
    return jnp.concatenate([x[first], x[last]])


def num_series_statistics(features: int, lags: int) -> int:
    """How many numbers :func:`series_statistics` returns for ``features`` and ``lags``."""
    return (5 + 3 * int(lags)) * int(features) + 1


def series_statistics(x: jax.Array, mask: jax.Array | None, lags: int):
    """A series ``(T, features)`` on its own scale and its explicit statistics:
    ``[mean, log sd, log rms (about zero), autocorrelations (centered), lag regressions
    (about zero: coefficient and log residual scale), first and last step (own scale),
    log T]``,
    ``(num_series_statistics(features, lags),)``, over observed steps only (padding-invariant).
    Exact second-order structure beside the learned features, which approximate products of
    lagged values only roughly; the scale and length go in because own-scaling removes them.
    The root mean square about zero, sqrt(sum y_t^2 / T), is the scale that goes with the lag
    regression coefficients about zero: for an AR(1) series started at zero, (sum y_t^2 / T,
    b_1, T) are its sufficient statistics up to the last step, while the centered sd mixes
    the level in; short series, whose level is far from their mean, gain most
    (BENCHMARKS.md, the AR(1) scenario)."""
    scaled, loc, log_scale = own_scale(x, mask)
    rms = root_mean_square(x, mask)
    explicit = jnp.concatenate(
        [
            loc,
            log_scale,
            jnp.log(rms),
            autocorrelations(scaled, mask, lags),
            lag_regressions(x, mask, lags, rms),
            series_ends(scaled, mask),
            log_length(x, mask),
        ]
    )
    return scaled, explicit


class MAB(eqx.Module):
    """Multihead attention block: H = LN(Q + MHA(Q, K)); out = LN(H + MLP(H))."""

    attn: eqx.nn.MultiheadAttention
    ff: MLP
    ln1: eqx.nn.LayerNorm
    ln2: eqx.nn.LayerNorm

    def __init__(self, dim: int, num_heads: int, mlp_widths, dropout: float, *, key):
        k1, k2 = jax.random.split(key)
        self.attn = eqx.nn.MultiheadAttention(num_heads, dim, key=k1)
        self.ff = MLP(dim, dim, widths=mlp_widths, dropout=dropout, key=k2)
        self.ln1 = eqx.nn.LayerNorm(dim)
        self.ln2 = eqx.nn.LayerNorm(dim)

    def __call__(self, q, kv, kv_mask=None, key=None):
        attn_mask = None
        if kv_mask is not None:
            attn_mask = jnp.broadcast_to(kv_mask.astype(bool)[None, :], (q.shape[0], kv.shape[0]))
        h = jax.vmap(self.ln1)(q + self.attn(q, kv, kv, mask=attn_mask))
        ff = self.ff.rows(h, key)
        return jax.vmap(self.ln2)(h + ff)


class PMA(eqx.Module):
    """Pooling by multihead attention: learned seeds attend to the (masked) rows."""

    seeds: jax.Array
    mab: MAB

    def __init__(self, dim, num_seeds, num_heads, mlp_widths, dropout, *, key):
        k1, k2 = jax.random.split(key)
        self.seeds = 0.1 * jax.random.normal(k1, (num_seeds, dim))
        self.mab = MAB(dim, num_heads, mlp_widths, dropout, key=k2)

    def __call__(self, h, mask=None, key=None):
        return self.mab(self.seeds, h, mask, key).reshape(-1)


class SetSummaryNetwork(SummaryNetwork):
    """A summary network of exchangeable sets (``DeepSet``, ``SetTransformer``): its
    explicit statistics are the set's moments ``[log N, mean, log sd, correlations]``
    (:func:`set_moments`)."""

    def explicit_statistics(self, x, mask=None):
        return set_moments(x, mask, self.config["moments"])
