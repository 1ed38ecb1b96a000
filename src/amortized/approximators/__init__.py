"""Approximators: networks + adapter + standardization = sample / log_prob."""

from .continuous import ContinuousApproximator
from .core import Networks
from .ensemble import EnsembleApproximator

__all__ = ["ContinuousApproximator", "EnsembleApproximator", "Networks"]
