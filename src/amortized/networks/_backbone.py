"""What the image backbones (:class:`~amortized.networks.UNet`,
:class:`~amortized.networks.UViT`) share: options stored as JSON, the image shape set at
build, and the common option checks."""

from __future__ import annotations

import json

import equinox as eqx
import jax

from .mlp import ACTIVATIONS, zero_layer

__all__ = ["ImageBackbone", "check_common_options", "zero_layer"]


def check_common_options(owner: str, activation: str, dropout: float) -> None:
    """The options every backbone takes, checked with the owner's name."""
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{owner}: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
        )
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"{owner}: dropout must lie in [0, 1), got {dropout}")


class ImageBackbone(eqx.Module):
    """An image-to-image network of a time: constructed from its options alone, built for
    an image shape by :meth:`build`."""

    config_json: str = eqx.field(static=True)
    shape: tuple = eqx.field(static=True)  # (H, W, C_in, C_out), () before build

    @property
    def config(self) -> dict:
        return json.loads(self.config_json)

    def build(self, height: int, width: int, c_in: int, c_out: int, key: jax.Array):
        """A copy with parameters for ``(height, width, c_in)`` inputs and ``c_out`` output
        channels."""
        return type(self)(**self.config, shape=(height, width, c_in, c_out), key=key)
