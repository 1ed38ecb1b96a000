"""The transform protocol shared by every adapter step.

A transform maps a dict of arrays to a dict of arrays. Invertible ones also carry an
elementwise log-det-Jacobian dict ``ldj`` that mirrors the data: ``ldj[key]`` has the shape of
``data[key]`` and holds ``log |d y / d x|`` of everything applied to that key so far. Routing
steps (rename, concatenate, keep ...) move ``ldj`` entries exactly like data, so at the end
``ldj["inference_variables"].sum(axis=-1)`` is the log-det of the whole chain for that vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

Data = dict[str, Any]


def xp_of(x: Any):
    """``jax.numpy`` for JAX arrays (so transforms trace under ``jit``), NumPy otherwise."""
    return jnp if isinstance(x, jax.Array) else np


def as_keys(keys: str | Sequence[str], where: str) -> list[str]:
    if isinstance(keys, str):
        return [keys]
    keys = list(keys)
    if not keys or not all(isinstance(k, str) for k in keys):
        raise TypeError(f"{where}: expected a key or a non-empty list of keys, got {keys!r}")
    return keys


class Transform:
    """Base class. Subclasses set ``name`` and implement ``forward``/``inverse``/``params``."""

    name: ClassVar[str] = ""
    invertible: ClassVar[bool] = True

    def forward(self, data: Data, ldj: Data | None, strict: bool) -> tuple[Data, Data | None]:
        raise NotImplementedError  # abstract: every registered transform overrides it

    def inverse(self, data: Data, strict: bool) -> Data:
        raise NotImplementedError  # abstract: every registered transform overrides it

    def params(self) -> dict[str, Any]:
        """JSON-serializable constructor arguments; ``type(self)(**params())`` rebuilds it."""
        raise NotImplementedError  # abstract: every registered transform overrides it

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Transform:
        """Rebuild from :meth:`params` (a saved configuration)."""
        return cls(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.name}({args})"


def missing(where: str, data: Data, keys: Sequence[str], strict: bool) -> bool:
    """True when all ``keys`` are absent and that is allowed; raise when only some are, or
    when any is absent in strict mode."""
    absent = [k for k in keys if k not in data]
    if not absent:
        return False
    if strict or len(absent) < len(keys):
        raise KeyError(f"Adapter.{where}: missing key(s) {absent}; available: {sorted(data)}")
    return True


def to_jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray | jax.Array | np.generic):
        return np.asarray(x).tolist()
    return x
