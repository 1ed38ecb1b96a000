"""ConvolutionalNetwork: a residual CNN for image observations ``(H, W, channels)``.

Each stage halves the resolution with a strided 3x3 convolution, then adds a residual block
``h + conv(act(norm(conv(act(norm(h))))))`` (group normalization); global average pooling and
an MLP head give the summary. Images have no padding, so ``mask`` must be None.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import strict
from .base import encode_config
from .mlp import MLP
from .summary_base import SummaryNetwork


def _groups(channels: int) -> int:
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class _ResidualBlock(eqx.Module):
    norm1: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv2d
    norm2: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv2d

    def __init__(self, channels: int, *, key):
        k1, k2 = jax.random.split(key)
        self.norm1 = eqx.nn.GroupNorm(_groups(channels), channels)
        self.conv1 = eqx.nn.Conv2d(channels, channels, 3, padding=1, key=k1)
        self.norm2 = eqx.nn.GroupNorm(_groups(channels), channels)
        self.conv2 = eqx.nn.Conv2d(channels, channels, 3, padding=1, key=k2)

    def __call__(self, h):
        r = self.conv1(jax.nn.silu(self.norm1(h)))
        return h + self.conv2(jax.nn.silu(self.norm2(r)))


class ConvolutionalNetwork(SummaryNetwork):
    """Images ``(H, W, channels)`` to ``summary_dim`` numbers.

    Parameters
    ----------
    summary_dim : int, default 16
    widths : sequence of int, default (32, 64)
        Channels of each stage (each stage halves height and width).
    mlp_widths : sequence of int, default (128,)
    dropout : float, default 0.05
        In the MLP head.

    >>> net = ConvolutionalNetwork(summary_dim=8, widths=(16, 32))
    """

    downs: tuple[eqx.nn.Conv2d, ...] | None
    blocks: tuple[_ResidualBlock, ...] | None
    head: MLP | None

    @strict
    def __init__(
        self,
        summary_dim: int = 16,
        widths: Sequence[int] = (32, 64),
        mlp_widths: Sequence[int] = (128,),
        dropout: float = 0.05,
        input_shape: tuple = (),
        key: jax.Array | None = None,
    ):
        widths = [int(w) for w in widths]
        if not widths or any(w <= 0 for w in widths):
            raise ValueError(f"ConvolutionalNetwork: widths must be positive, got {widths}")
        self.config_json = encode_config(
            summary_dim=int(summary_dim),
            widths=widths,
            mlp_widths=[int(w) for w in mlp_widths],
            dropout=float(dropout),
        )
        self.input_shape = tuple(input_shape)
        if not self.input_shape:
            self.downs = self.blocks = self.head = None
            return
        keys = jax.random.split(key, 2 * len(widths) + 1)
        chans = [self.input_shape[-1], *widths]
        self.downs = tuple(
            eqx.nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1, key=keys[2 * i])
            for i in range(len(widths))
        )
        self.blocks = tuple(_ResidualBlock(w, key=keys[2 * i + 1]) for i, w in enumerate(widths))
        self.head = MLP(
            widths[-1], int(summary_dim), widths=mlp_widths, dropout=dropout, key=keys[-1]
        )

    def build(self, input_shape: tuple[int, ...], key: jax.Array) -> ConvolutionalNetwork:
        if len(input_shape) != 3:
            raise ValueError(
                f"ConvolutionalNetwork: expects one image of shape (height, width, channels), "
                f"i.e. summary_variables of shape (batch, H, W, C); got per-dataset shape "
                f"{tuple(input_shape)}. Add a channel axis with Adapter.expand_dims(key, axis=-1)."
            )
        return type(self)(**self.config, input_shape=tuple(int(s) for s in input_shape), key=key)

    def __call__(self, x, key=None, mask=None):
        if mask is not None:
            raise ValueError("ConvolutionalNetwork: images take no summary_mask")
        h = jnp.moveaxis(x, -1, 0)  # (C, H, W)
        for down, block in zip(self.downs, self.blocks, strict=True):
            h = block(jax.nn.silu(down(h)))
        return self.head(jnp.mean(h, axis=(1, 2)), key)
