"""Workflows: BasicWorkflow (simulate, train, sample, save/load)."""

from .basic import BasicWorkflow, load

__all__ = ["BasicWorkflow", "load"]
