"""Diagnostics: metrics as pure functions over arrays."""

from .c2st import c2st

__all__ = ["c2st"]
