"""What training makes of an approximator, as one immutable value.

A :class:`Trained` holds everything a trained approximator computes with and saves
besides its parts (networks' structure, adapter) and its history: the networks'
parameters, the standardization statistics, the per-row shapes of the network inputs, the
training ranges of the conditions and the input keys they came from. ``fit`` builds a new
value from the old one and replaces it in one assignment at the end, so a failed or
interrupted fit leaves the approximator as it was; nothing changes a value in place (an
Equinox module is a frozen dataclass and a pytree).
"""

from __future__ import annotations

import equinox as eqx

from .condition_checks import Ranges
from .core import Networks
from .standardization import Stats


class Trained(eqx.Module):
    """``nets``: the trained networks; ``stats``: ``{network key: (mean, std)}``;
    ``shapes``: ``{network key: per-row shape}`` of training (``()`` for a dict of
    sources); ``condition_ranges``: per-feature ``{"min", "max"}`` of the training
    conditions (None when unknown); ``condition_keys``: the input keys that reached the
    conditions in training (None when unknown, e.g. a model saved before they were
    recorded)."""

    nets: Networks
    stats: Stats
    shapes: dict[str, tuple[int, ...]]
    condition_ranges: Ranges | None = None
    condition_keys: list[str] | None = None
