"""TimeSeriesNetwork: 1-D convolutions over time, then (optionally) a GRU, for series
``(T, features)``.

Each series is first put on its own scale, x <- (x - mean) / sd (per feature, observed
steps only); explicit statistics join the summary (:func:`summary_base.series_statistics`):
the mean, the log sd, the log root mean square about zero, the autocorrelations at lags
1..``autocorrelation_lags``, the lag regressions of the raw series about zero at the same
lags, coefficient and log residual scale (the level kept: for a process anchored at zero
the centered autocorrelation loses it), the first and last observed steps and the log of
the number of observed steps. Then h = conv_L(... act(conv_1(x))) (kernel ``kernel_size``, "same"
padding, over time); a forward GRU over the steps, or over the means of windows of
``recurrent_window`` steps (and a backward GRU, ``bidirectional``; none with
``recurrent_dim=0``); with e the explicit statistics ((5 + 3 lags) * features + 1 numbers),
summary = [e, Linear([final states, mean over time of h, e])] when ``summary_dim`` > len(e),
else Linear([final states, mean over time of h, e]). The explicit statistics pass through
unmixed because mixed into a linear head with ~200 learned features they were blurred (on
AR(2) the mixed summary did worse than a flow conditioned on e alone; the measurements are in
BENCHMARKS.md's log). The time-averaged convolution features are moment-like statistics of
local windows (e.g. lagged products, which identify autoregressive structure); without them
the GRU alone learned such structure far more slowly (AR(2): no recovery of the coefficients
after 500 steps, against correlation 0.9 for the same features averaged). Padded steps
(``mask`` 0) are zeroed before every convolution (so the convolutions see exactly the zeros
of an unpadded series' border) and skipped by the GRUs (their state passes through
unchanged), so a series padded at its end (or start) gives the same summary as the unpadded
one. A masked gap inside a series is skipped by the GRUs, but the convolutions see zeros
there instead of the neighbouring steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_positive_int, strict
from .base import encode_config
from .mlp import dropout_keep_mask
from .summary_base import (
    SummaryNetwork,
    masked_mean,
    num_series_statistics,
    series_statistics,
)


def window_means(h: jax.Array, mask: jax.Array, window: int):
    """Means of ``h`` ``(T, C)`` over consecutive windows of ``window`` observed-aligned
    steps, ``(ceil(T / window), C)``, and each window's mask (1 where it holds an observed
    step). Windows start at the first observed step, so leading padding moves nothing; a
    window's mean counts only its observed steps, so trailing padding changes nothing."""
    T = h.shape[0]
    num = -(-T // window)
    t0 = jnp.argmax(mask > 0)
    src = t0 + jnp.arange(num * window)
    inside = (src < T).astype(h.dtype)
    src = jnp.minimum(src, T - 1)
    m = mask[src] * inside
    hs = (h[src] * m[:, None]).reshape(num, window, -1).sum(axis=1)
    count = m.reshape(num, window).sum(axis=1)
    return hs / jnp.maximum(count, 1.0)[:, None], (count > 0).astype(h.dtype)


def conv_same(conv: eqx.nn.Conv1d, h: jax.Array) -> jax.Array:
    """``conv`` (stride 1, "SAME" padding) applied to ``h`` ``(T, C_in)``, ``(T, C_out)``,
    computed as one matrix product of the ``kernel_size`` shifted copies of ``h`` side by
    side. Same numbers as ``conv(h.T).T``; why: inside a training step XLA on CPU computed
    the kernel's gradient of a convolution as a convolution over the whole series (window
    T), about 10x slower than the forward pass, while this form's gradients are matrix
    products."""
    out_c, in_c, k = conv.weight.shape
    lo = (k - 1) // 2
    padded = jnp.pad(h, ((lo, k - 1 - lo), (0, 0)))
    T = h.shape[0]
    cols = jnp.concatenate([padded[j : j + T] for j in range(k)], axis=-1)  # (T, k * C_in)
    w = jnp.transpose(conv.weight, (2, 1, 0)).reshape(k * in_c, out_c)
    return cols @ w + conv.bias.reshape(1, out_c)


def _gru_scan(cell: eqx.nn.GRUCell, x, mask, reverse: bool):
    def step(h, inputs):
        xt, mt = inputs
        return jnp.where(mt > 0, cell(xt, h), h), None

    h0 = jnp.zeros((cell.hidden_size,), x.dtype)
    h, _ = jax.lax.scan(step, h0, (x, mask), reverse=reverse)
    return h


class TimeSeriesNetwork(SummaryNetwork):
    """Series ``(T, features)`` to ``summary_dim`` numbers with convolutions, explicit
    statistics and (optionally) a GRU.

    Parameters
    ----------
    summary_dim : int, default 24
        Output size. The first (5 + 3 ``autocorrelation_lags``) * features + 1 numbers are
        the explicit statistics (mean, log sd, log root mean square about zero,
        autocorrelations, lag regression coefficients and log residual scales about zero,
        first and last step, log length) when that leaves at least one learned number; otherwise all
        ``summary_dim`` are learned from them and the other features.
    filters : sequence of int, default (32, 32)
        Channels of each 1-D convolution over time.
    kernel_size : int, default 3
    recurrent_dim : int, default 0
        GRU state size (per direction); 0 (the default): no recurrent layer, the summary is
        made of the convolution features' time average and the explicit statistics, and a
        training step has no loop over time. Why no GRU by default: on the AR(1) scenario
        (series of 20-200 steps) a unidirectional GRU of 32 over windows of 16 steps cost
        2.5x the training time for the same accuracy, and the bidirectional GRU of 64 over
        every step (BayesFlow's kind of default) trained for over 26 minutes (BENCHMARKS.md
        and its log). Pass e.g. ``recurrent_dim=64`` for order beyond the convolutions'
        reach (trends, change points).
    bidirectional : bool, default True when there is a GRU
        Refused with ``recurrent_dim=0`` (it would configure nothing).
    recurrent_window : int, default 1 when there is a GRU
        The GRUs run over the means of consecutive windows of this many steps of the
        convolution features (starting at the first observed step; a window's mean counts
        its observed steps only), so a series of T steps costs ceil(T / window) recurrent
        steps: the recurrence is most of this network's cost, and it cannot run in parallel
        over time.
    autocorrelation_lags : int, default 5
        Sample autocorrelations of the (own-scaled) series and lag regression coefficients
        about zero at these lags join the summary (0: none): exact second-order structure beside the
        learned features, which approximate products of lagged values only roughly.
    dropout : float, default 0.05
        On the final states, during training.

    >>> net = TimeSeriesNetwork(summary_dim=8)
    """

    convs: tuple[eqx.nn.Conv1d, ...] | None
    forward_cell: eqx.nn.GRUCell | None
    backward_cell: eqx.nn.GRUCell | None
    head: eqx.nn.Linear | None

    @strict
    def __init__(
        self,
        summary_dim: int = 24,
        filters: Sequence[int] = (32, 32),
        kernel_size: int = 3,
        recurrent_dim: int = 0,
        bidirectional: bool | None = None,
        recurrent_window: int | None = None,
        autocorrelation_lags: int = 5,
        dropout: float = 0.05,
        input_shape: tuple = (),
        key: jax.Array | None = None,
    ):
        filters = [int(f) for f in filters]
        if any(f <= 0 for f in filters) or int(kernel_size) <= 0 or int(recurrent_dim) < 0:
            raise ValueError(
                f"TimeSeriesNetwork: filters and kernel_size must be positive and "
                f"recurrent_dim >= 0 (0: no recurrent layer), got {filters}, {kernel_size}, "
                f"{recurrent_dim}"
            )
        if int(recurrent_dim) == 0:
            # options of a layer that is not there must not pass unnoticed
            given = [
                n
                for n, v in (
                    ("bidirectional", bidirectional),
                    ("recurrent_window", recurrent_window),
                )
                if v is not None
            ]
            if given:
                raise ValueError(
                    f"TimeSeriesNetwork: {', '.join(given)} configure the recurrent layer, but "
                    f"recurrent_dim=0 (the default) builds none; pass recurrent_dim > 0 (e.g. "
                    f"64) for a GRU"
                )
        else:
            bidirectional = True if bidirectional is None else bool(bidirectional)
            # a window of 2.5 steps must not quietly become 2
            recurrent_window = check_positive_int(
                "TimeSeriesNetwork",
                "recurrent_window",
                1 if recurrent_window is None else recurrent_window,
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"TimeSeriesNetwork: dropout must lie in [0, 1), got {dropout}")
        if int(autocorrelation_lags) < 0:
            raise ValueError(
                f"TimeSeriesNetwork: autocorrelation_lags must be >= 0, got {autocorrelation_lags}"
            )
        self.config_json = encode_config(
            summary_dim=int(summary_dim),
            filters=filters,
            kernel_size=int(kernel_size),
            recurrent_dim=int(recurrent_dim),
            bidirectional=bidirectional,
            recurrent_window=recurrent_window,
            autocorrelation_lags=int(autocorrelation_lags),
            dropout=float(dropout),
        )
        self.input_shape = tuple(input_shape)
        if not self.input_shape:
            self.convs = self.forward_cell = self.backward_cell = self.head = None
            return
        keys = jax.random.split(key, len(filters) + 3)
        chans = [self.input_shape[-1], *filters]
        self.convs = tuple(
            eqx.nn.Conv1d(chans[i], chans[i + 1], int(kernel_size), padding="SAME", key=keys[i])
            for i in range(len(filters))
        )
        rdim = int(recurrent_dim)
        self.forward_cell = eqx.nn.GRUCell(chans[-1], rdim, key=keys[-3]) if rdim else None
        self.backward_cell = (
            eqx.nn.GRUCell(chans[-1], rdim, key=keys[-2]) if rdim and bidirectional else None
        )
        out_in = rdim * (2 if rdim and bidirectional else 1) + chans[-1] + self._explicit()
        self.head = eqx.nn.Linear(out_in, int(summary_dim) - self._passed(), key=keys[-1])

    def _explicit(self) -> int:
        """Number of explicit statistics (:func:`summary_base.series_statistics`)."""
        return num_series_statistics(self.input_shape[-1], self.config["autocorrelation_lags"])

    def _passed(self) -> int:
        """How many explicit statistics pass to the summary unmixed: all of them when
        ``summary_dim`` leaves room for at least one learned number beside them, else none
        (they still feed the head)."""
        n = self._explicit()
        return n if self.config["summary_dim"] > n else 0

    def explicit_statistics(self, x, mask=None):
        """The series' explicit statistics (:func:`series_statistics`)."""
        return series_statistics(x, mask, self.config["autocorrelation_lags"])[1]

    def __call__(self, x, key=None, mask=None):
        m = jnp.ones(x.shape[:1], x.dtype) if mask is None else mask.astype(x.dtype)
        x, explicit = series_statistics(x, mask, self.config["autocorrelation_lags"])
        h = x  # (T, channels)
        for conv in self.convs:
            h = jax.nn.silu(conv_same(conv, h * m[:, None]))
        h = h * m[:, None]
        pooled = masked_mean(h, mask)
        window = self.config.get("recurrent_window") or 1
        hr, mr = (h, m) if window == 1 else window_means(h, m, window)
        states = []
        if self.forward_cell is not None:
            states.append(_gru_scan(self.forward_cell, hr, mr, reverse=False))
        if self.backward_cell is not None:
            states.append(_gru_scan(self.backward_cell, hr, mr, reverse=True))
        z = jnp.concatenate([*states, pooled, explicit])
        rate = self.config["dropout"]
        if key is not None and rate > 0:
            z = jnp.where(dropout_keep_mask(key, 0, z.shape, rate), z / (1.0 - rate), 0.0)
        if self._passed():
            return jnp.concatenate([explicit, self.head(z)])
        return self.head(z)
