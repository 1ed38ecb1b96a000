"""UNet: a time-conditioned convolutional backbone for image-valued targets (Ronneberger et
al. 2015; in the form diffusion models use, Ho et al. 2020).

It maps an input image ``(H, W, C_in)`` (the noisy target with the condition map and the
broadcast global conditions concatenated channel-wise, see
:mod:`~amortized.networks.image_field`) and a time ``t`` to an output image ``(H, W,
C_out)``. Each level holds residual blocks
``h + conv(drop(act(norm(conv(act(norm(h))) * (1 + scale) + shift))))`` whose scale and
shift come from an embedding of ``t`` (FiLM), and halves the resolution into the next
level with a strided convolution; the way up doubles it (nearest neighbour, then a
convolution) and concatenates the matching level's activations (the skip connections).
The output convolution starts at zero, so a fresh network predicts zeros (the stable
start every continuous-time network here assumes).

Height and width must be divisible by ``2^(len(widths) - 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import strict
from ._backbone import ImageBackbone, check_common_options, zero_layer
from .base import encode_config
from .convolutional_network import _groups
from .mlp import ACTIVATIONS, dropout_keep_mask, fourier_time_embedding


class _TimeBlock(eqx.Module):
    """A residual block with FiLM from the time embedding; images are ``(C, H, W)``."""

    norm1: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv2d
    film: eqx.nn.Linear
    norm2: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv2d
    skip: eqx.nn.Conv2d | None

    def __init__(self, c_in: int, c_out: int, emb_dim: int, *, key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.norm1 = eqx.nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = eqx.nn.Conv2d(c_in, c_out, 3, padding=1, key=k1)
        self.film = zero_layer(eqx.nn.Linear(emb_dim, 2 * c_out, key=k2))
        self.norm2 = eqx.nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = eqx.nn.Conv2d(c_out, c_out, 3, padding=1, key=k3)
        self.skip = None if c_in == c_out else eqx.nn.Conv2d(c_in, c_out, 1, key=k4)

    def __call__(self, h, emb, act, drop):
        r = self.conv1(act(self.norm1(h)))
        scale, shift = jnp.split(self.film(emb), 2)
        r = self.norm2(r) * (1.0 + scale[:, None, None]) + shift[:, None, None]
        r = self.conv2(drop(act(r)))
        return (h if self.skip is None else self.skip(h)) + r


class UNet(ImageBackbone):
    """Time-conditioned UNet backbone (module docstring), for ``DiffusionModel``,
    ``FlowMatching``, ``ConsistencyModel`` and ``StableConsistencyModel`` on image-valued
    targets: ``subnet=bf.networks.UNet()``.

    Parameters
    ----------
    widths : sequence of int, default (32, 64)
        Channels of each resolution level (each further level halves height and width).
    blocks_per_level : int, default 1
        Residual blocks per level on the way down (one more on the way up).
    time_embedding_dim : int, default 32
    activation : str, default "silu"
    dropout : float, default 0.0
        Inside the residual blocks (training only).

    Examples
    --------
    >>> net = UNet(widths=(16, 32))
    >>> net.config["widths"]
    [16, 32]
    """

    time_mlp: tuple[eqx.nn.Linear, eqx.nn.Linear] | None
    conv_in: eqx.nn.Conv2d | None
    down_blocks: tuple[tuple[_TimeBlock, ...], ...] | None
    downsample: tuple[eqx.nn.Conv2d, ...] | None
    mid: tuple[_TimeBlock, _TimeBlock] | None
    upsample: tuple[eqx.nn.Conv2d, ...] | None
    up_blocks: tuple[tuple[_TimeBlock, ...], ...] | None
    norm_out: eqx.nn.GroupNorm | None
    conv_out: eqx.nn.Conv2d | None

    @strict
    def __init__(
        self,
        widths: Sequence[int] = (32, 64),
        blocks_per_level: int = 1,
        time_embedding_dim: int = 32,
        activation: str = "silu",
        dropout: float = 0.0,
        shape: tuple = (),
        key: jax.Array | None = None,
    ):
        widths = [int(w) for w in widths]
        if not widths or any(w <= 0 for w in widths):
            raise ValueError(f"UNet: widths must be positive integers, got {widths}")
        if int(blocks_per_level) < 1:
            raise ValueError(f"UNet: blocks_per_level must be >= 1, got {blocks_per_level}")
        check_common_options("UNet", activation, dropout)
        self.config_json = encode_config(
            widths=widths,
            blocks_per_level=int(blocks_per_level),
            time_embedding_dim=int(time_embedding_dim),
            activation=activation,
            dropout=float(dropout),
        )
        self.shape = tuple(int(s) for s in shape)
        if not self.shape:
            self.time_mlp = self.conv_in = self.down_blocks = self.downsample = None
            self.mid = self.upsample = self.up_blocks = self.norm_out = self.conv_out = None
            return
        height, width, c_in, c_out = self.shape
        factor = 2 ** (len(widths) - 1)
        if height % factor or width % factor:
            raise ValueError(
                f"UNet(widths={widths}): {len(widths)} levels halve the image "
                f"{len(widths) - 1} times, so height and width must be divisible by {factor}; "
                f"got an image of {height} x {width}. Use fewer widths, or pad the image in "
                f"the simulator"
            )
        emb = 4 * widths[0]
        keys = iter(jax.random.split(key, 64))
        t_dim = int(time_embedding_dim) + 1
        self.time_mlp = (
            eqx.nn.Linear(t_dim, emb, key=next(keys)),
            eqx.nn.Linear(emb, emb, key=next(keys)),
        )
        n = int(blocks_per_level)
        self.conv_in = eqx.nn.Conv2d(c_in, widths[0], 3, padding=1, key=next(keys))
        self.down_blocks = tuple(
            tuple(_TimeBlock(w, w, emb, key=next(keys)) for _ in range(n)) for w in widths
        )
        self.downsample = tuple(
            eqx.nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, key=next(keys))
            for i in range(len(widths) - 1)
        )
        self.mid = (
            _TimeBlock(widths[-1], widths[-1], emb, key=next(keys)),
            _TimeBlock(widths[-1], widths[-1], emb, key=next(keys)),
        )
        self.upsample = tuple(
            eqx.nn.Conv2d(widths[i + 1], widths[i], 3, padding=1, key=next(keys))
            for i in range(len(widths) - 1)
        )
        # on the way up each level sees its own activations concatenated with the skip
        self.up_blocks = tuple(
            tuple(_TimeBlock(2 * w if j == 0 else w, w, emb, key=next(keys)) for j in range(n + 1))
            for w in widths
        )
        self.norm_out = eqx.nn.GroupNorm(_groups(widths[0]), widths[0])
        self.conv_out = zero_layer(eqx.nn.Conv2d(widths[0], c_out, 3, padding=1, key=next(keys)))

    def __call__(self, image: jax.Array, t: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """``image`` ``(H, W, C_in)``, scalar ``t`` -> ``(H, W, C_out)``; dropout with a
        ``key``."""
        opts = self.config
        act = ACTIVATIONS[opts["activation"]]
        rate = opts["dropout"]
        counter = iter(range(10_000))

        def drop(h):
            if key is None or rate == 0.0:
                return h
            keep = dropout_keep_mask(key, next(counter), h.shape, rate)
            return jnp.where(keep, h / (1.0 - rate), 0.0)

        e = fourier_time_embedding(t, opts["time_embedding_dim"])
        e = self.time_mlp[1](act(self.time_mlp[0](e)))
        h = self.conv_in(jnp.moveaxis(image, -1, 0))
        skips = []
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, e, act, drop)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        for block in self.mid:
            h = block(h, e, act, drop)
        for level in reversed(range(len(self.up_blocks))):
            if level < len(self.upsample):
                h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
                h = self.upsample[level](h)
            h = jnp.concatenate([h, skips[level]], axis=0)
            for block in self.up_blocks[level]:
                h = block(h, e, act, drop)
        out = self.conv_out(act(self.norm_out(h)))
        return jnp.moveaxis(out, 0, -1)
