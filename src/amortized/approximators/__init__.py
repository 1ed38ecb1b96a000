"""Approximators: networks + adapter + standardization = sample / log_prob."""

from .continuous import ContinuousApproximator
from .core import Networks

__all__ = ["ContinuousApproximator", "Networks"]
