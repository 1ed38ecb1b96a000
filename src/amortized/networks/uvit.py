"""UViT: a vision transformer backbone with long skip connections for image-valued targets
(Bao et al. 2023, "All are Worth Words: A ViT Backbone for Diffusion Models").

The input image ``(H, W, C_in)`` (noisy target, condition map and broadcast global
conditions, channel-wise; :mod:`~amortized.networks.image_field`) is cut into ``p x p``
patches, each embedded linearly as a token with a learned position embedding; the time
embedding is one more token. ``depth`` pre-norm transformer blocks (self-attention, then an
MLP) follow, the first half's outputs joined to the second half's inputs in reverse order
(the long skips: concatenated, then projected back to the width). The patch tokens are
projected to ``p x p x C_out`` pixels, reassembled, and passed through a 3x3 convolution
that starts at zero (a fresh network predicts zeros).

Height and width must be divisible by ``patch_size``; ``depth`` must be odd (in-blocks,
one middle block, out-blocks).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import strict
from ._backbone import ImageBackbone, check_common_options, zero_layer
from .base import encode_config
from .mlp import ACTIVATIONS, dropout_keep_mask, fourier_time_embedding


class _Block(eqx.Module):
    norm1: eqx.nn.LayerNorm
    attn: eqx.nn.MultiheadAttention
    norm2: eqx.nn.LayerNorm
    mlp1: eqx.nn.Linear
    mlp2: eqx.nn.Linear
    skip: eqx.nn.Linear | None

    def __init__(self, width: int, heads: int, skip: bool, *, key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.skip = eqx.nn.Linear(2 * width, width, key=k4) if skip else None
        self.norm1 = eqx.nn.LayerNorm(width)
        self.attn = eqx.nn.MultiheadAttention(heads, width, key=k1)
        self.norm2 = eqx.nn.LayerNorm(width)
        self.mlp1 = eqx.nn.Linear(width, 4 * width, key=k2)
        self.mlp2 = eqx.nn.Linear(4 * width, width, key=k3)

    def __call__(self, h, skip, act, drop):
        if self.skip is not None:
            h = jax.vmap(self.skip)(jnp.concatenate([h, skip], axis=-1))
        a = jax.vmap(self.norm1)(h)
        h = h + self.attn(a, a, a)
        m = jax.vmap(self.mlp1)(jax.vmap(self.norm2)(h))
        return h + drop(jax.vmap(self.mlp2)(drop(act(m))))


class UViT(ImageBackbone):
    """Vision-transformer backbone with long skips (module docstring), for the
    continuous-time networks and both consistency models: ``subnet=bf.networks.UViT()``.

    Parameters
    ----------
    patch_size : int, default 2
    width : int, default 128
        Token width.
    depth : int, default 5
        Transformer blocks (odd).
    num_heads : int, default 4
    time_embedding_dim : int, default 32
    activation : str, default "gelu"
    dropout : float, default 0.0

    Examples
    --------
    >>> net = UViT(patch_size=2, width=64, depth=3)
    >>> net.config["depth"]
    3
    """

    patch_in: eqx.nn.Linear | None
    position: jax.Array | None
    time_in: tuple[eqx.nn.Linear, eqx.nn.Linear] | None
    blocks: tuple[_Block, ...] | None
    norm_out: eqx.nn.LayerNorm | None
    patch_out: eqx.nn.Linear | None
    conv_out: eqx.nn.Conv2d | None

    @strict
    def __init__(
        self,
        patch_size: int = 2,
        width: int = 128,
        depth: int = 5,
        num_heads: int = 4,
        time_embedding_dim: int = 32,
        activation: str = "gelu",
        dropout: float = 0.0,
        shape: tuple = (),
        key: jax.Array | None = None,
    ):
        p, width, depth, heads = int(patch_size), int(width), int(depth), int(num_heads)
        if min(p, width, depth, heads) < 1:
            raise ValueError(
                f"UViT: patch_size, width, depth and num_heads must be positive, got "
                f"{patch_size}, {width}, {depth}, {num_heads}"
            )
        if depth % 2 == 0:
            raise ValueError(
                f"UViT: depth must be odd (in-blocks, a middle block, out-blocks), got {depth}"
            )
        if width % heads:
            raise ValueError(f"UViT: width ({width}) must be divisible by num_heads ({heads})")
        check_common_options("UViT", activation, dropout)
        self.config_json = encode_config(
            patch_size=p,
            width=width,
            depth=depth,
            num_heads=heads,
            time_embedding_dim=int(time_embedding_dim),
            activation=activation,
            dropout=float(dropout),
        )
        self.shape = tuple(int(s) for s in shape)
        if not self.shape:
            self.patch_in = self.position = self.time_in = self.blocks = None
            self.norm_out = self.patch_out = self.conv_out = None
            return
        height, wid, c_in, c_out = self.shape
        if height % p or wid % p:
            raise ValueError(
                f"UViT(patch_size={p}): height and width must be divisible by the patch size; "
                f"got an image of {height} x {wid}"
            )
        tokens = (height // p) * (wid // p)
        keys = iter(jax.random.split(key, depth + 8))
        self.patch_in = eqx.nn.Linear(p * p * c_in, width, key=next(keys))
        self.position = 0.02 * jax.random.normal(next(keys), (tokens + 1, width))
        t_dim = int(time_embedding_dim) + 1
        self.time_in = (
            eqx.nn.Linear(t_dim, width, key=next(keys)),
            eqx.nn.Linear(width, width, key=next(keys)),
        )
        half = depth // 2
        self.blocks = tuple(_Block(width, heads, i > half, key=next(keys)) for i in range(depth))
        self.norm_out = eqx.nn.LayerNorm(width)
        self.patch_out = eqx.nn.Linear(width, p * p * c_out, key=next(keys))
        self.conv_out = zero_layer(eqx.nn.Conv2d(c_out, c_out, 3, padding=1, key=next(keys)))

    def __call__(self, image: jax.Array, t: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """``image`` ``(H, W, C_in)``, scalar ``t`` -> ``(H, W, C_out)``."""
        opts = self.config
        act = ACTIVATIONS[opts["activation"]]
        rate, p = opts["dropout"], opts["patch_size"]
        height, wid, c_in, c_out = self.shape
        gh, gw = height // p, wid // p
        counter = iter(range(10_000))

        def drop(h):
            if key is None or rate == 0.0:
                return h
            keep = dropout_keep_mask(key, next(counter), h.shape, rate)
            return jnp.where(keep, h / (1.0 - rate), 0.0)

        patches = image.reshape(gh, p, gw, p, c_in).transpose(0, 2, 1, 3, 4)
        tokens = jax.vmap(self.patch_in)(patches.reshape(gh * gw, p * p * c_in))
        e = fourier_time_embedding(t, opts["time_embedding_dim"])
        e = self.time_in[1](act(self.time_in[0](e)))
        h = jnp.concatenate([e[None], tokens], axis=0) + self.position
        half = len(self.blocks) // 2
        skips = []
        for i, block in enumerate(self.blocks):
            h = block(h, skips.pop() if i > half else None, act, drop)
            if i < half:
                skips.append(h)
        out = jax.vmap(self.patch_out)(jax.vmap(self.norm_out)(h[1:]))
        out = out.reshape(gh, gw, p, p, c_out).transpose(0, 2, 1, 3, 4).reshape(height, wid, c_out)
        return jnp.moveaxis(self.conv_out(jnp.moveaxis(out, -1, 0)), 0, -1)
