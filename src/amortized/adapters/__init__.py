"""Adapters: route simulator outputs to network inputs with invertible, Jacobian-tracked
transforms."""

from ._base import Transform
from .adapter import NETWORK_KEYS, TRANSFORMS, Adapter

__all__ = ["NETWORK_KEYS", "TRANSFORMS", "Adapter", "Transform"]
