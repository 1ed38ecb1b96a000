"""The subnet of a continuous-time network or consistency model: a time-conditioned MLP for
vector targets, or an image backbone (:class:`~amortized.networks.UNet`,
:class:`~amortized.networks.UViT`) for image-valued targets.

Every network here sees its target and conditions as flat vectors: the target ``(dim,)``
and the condition input ``(cond_width,)``, which is the condition map (when the
conditions are an image) flattened, then the global conditions (inference conditions given
as vectors, learned summaries, and the classifier-free guidance flag). An image backbone is
wrapped by :class:`ImageField`, which restores the layout: the target ``(H, W, C)``, the
condition map ``(H, W, D)`` and the global conditions broadcast to ``(H, W, G)`` are
concatenated channel-wise into the backbone's input, and its ``(H, W, C)`` output is
flattened again. The layout ``(H, W, C, D)`` comes from the data (the approximator passes it
when it builds the network) and is saved with the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .mlp import TimeMLP, time_mlp_options
from .unet import UNet
from .uvit import UViT

IMAGE_SUBNETS: dict[str, type] = {"UNet": UNet, "UViT": UViT}
_NAMES = {"unet": "UNet", "uvit": "UViT"}


def subnet_config(owner: str, subnet: Any, subnet_kwargs: Mapping[str, Any] | None):
    """``(subnet, subnet_kwargs)`` as a network stores them in its configuration: a TimeMLP
    name with its checked options, or ``({"class": ..., "config": ...}, {})`` for an image
    backbone given as an instance (``UNet()``), a class with ``subnet_kwargs``, a name
    ("unet", "uvit") with ``subnet_kwargs``, or that stored form."""
    if isinstance(subnet, str) and subnet.lower() in _NAMES:
        subnet = IMAGE_SUBNETS[_NAMES[subnet.lower()]]
    if isinstance(subnet, type) and subnet in IMAGE_SUBNETS.values():
        subnet = subnet(**dict(subnet_kwargs or {}))
        subnet_kwargs = None
    if isinstance(subnet, Mapping) and set(subnet) == {"class", "config"}:
        if subnet["class"] not in IMAGE_SUBNETS:
            raise ValueError(
                f"{owner}: unknown subnet class {subnet['class']!r}; known: {sorted(IMAGE_SUBNETS)}"
            )
        subnet = IMAGE_SUBNETS[subnet["class"]](**subnet["config"])
    if isinstance(subnet, tuple(IMAGE_SUBNETS.values())):
        if subnet_kwargs:
            raise ValueError(
                f"{owner}: subnet is a built {type(subnet).__name__}; give its options to "
                f"{type(subnet).__name__}(...) itself, not subnet_kwargs={dict(subnet_kwargs)}"
            )
        return {"class": type(subnet).__name__, "config": subnet.config}, {}
    if isinstance(subnet, str):
        return subnet, time_mlp_options(owner, subnet, subnet_kwargs)
    raise TypeError(
        f"{owner}: subnet must be 'time_mlp', 'mlp', 'unet', 'uvit', or a UNet / UViT "
        f"(instance or class), got {subnet!r}"
    )


def check_layout(owner: str, layout, dim: int, cond_width: int) -> tuple[int, ...] | None:
    """``layout`` ``(H, W, C, D)`` as a tuple of ints (None stays None), checked against the
    flat sizes: ``dim == H W C`` and ``cond_width >= H W D``."""
    if layout is None:
        return None
    layout = tuple(int(s) for s in layout)
    if len(layout) != 4 or min(layout[:3]) < 1 or layout[3] < 0:
        raise ValueError(
            f"{owner}: layout must be (height, width, channels, map_channels), got {layout}"
        )
    height, width, channels, map_channels = layout
    if dim and height * width * channels != dim:
        raise ValueError(
            f"{owner}: the target has {dim} numbers, and the layout {layout} describes "
            f"{height} x {width} x {channels}"
        )
    if cond_width < height * width * map_channels:
        raise ValueError(
            f"{owner}: a condition map of {height} x {width} x {map_channels} needs "
            f"{height * width * map_channels} condition inputs, got {cond_width}"
        )
    return layout


class ImageField(eqx.Module):
    """An image backbone behind the flat interface ``field(vec, t, key) -> (dim,)`` of the
    continuous-time networks (module docstring)."""

    backbone: eqx.Module
    layout: tuple = eqx.field(static=True)
    global_dim: int = eqx.field(static=True)

    def __call__(self, vec: jax.Array, t: jax.Array, key: jax.Array | None = None) -> jax.Array:
        height, width, channels, map_channels = self.layout
        n = height * width * channels
        m = height * width * map_channels
        parts = [vec[:n].reshape(height, width, channels)]
        if map_channels:
            parts.append(vec[n : n + m].reshape(height, width, map_channels))
        if self.global_dim:
            parts.append(jnp.broadcast_to(vec[n + m :], (height, width, self.global_dim)))
        return self.backbone(jnp.concatenate(parts, axis=-1), t, key).reshape(-1)


def make_field(
    owner: str,
    dim: int,
    cond_width: int,
    subnet: str | Mapping[str, Any],
    subnet_kwargs: Mapping[str, Any],
    layout: tuple[int, ...] | None,
    key: jax.Array,
) -> eqx.Module:
    """The built subnet for a ``dim``-dimensional target and ``cond_width`` condition inputs
    (``subnet`` and ``subnet_kwargs`` as :func:`subnet_config` stores them)."""
    if isinstance(subnet, str):
        return TimeMLP(dim + cond_width, dim, key=key, **subnet_kwargs)
    name = subnet["class"]
    if layout is None:
        raise ValueError(
            f"{owner}(subnet={name}()): an image backbone needs image-valued "
            f"inference_variables of shape (batch, height, width, channels); this target is "
            f"a vector of {dim}. Use the default subnet ('time_mlp') for vector targets"
        )
    height, width, channels, map_channels = layout
    global_dim = cond_width - height * width * map_channels
    backbone = IMAGE_SUBNETS[name](**subnet["config"]).build(
        height, width, channels + map_channels + global_dim, channels, key
    )
    return ImageField(backbone, layout, global_dim)
