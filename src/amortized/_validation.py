"""Checks done once at the public boundary: keywords, keys, shapes, finiteness, seeds.

Every check raises with what was expected and what arrived; nothing here asserts.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np


def check_keywords(where: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """Raise ``TypeError`` naming unknown keywords and listing the accepted ones."""
    accepted = sorted(accepted)
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise TypeError(f"{where}: unknown keyword argument(s) {unknown}; accepted: {accepted}")


def strict_kwargs(where: str, kwargs: Mapping[str, Any] | None, accepted: Iterable[str]) -> dict:
    """Check the keys of a ``*_kwargs`` dict against ``accepted`` and return a copy."""
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"{where}: expected a dict, got {type(kwargs).__name__}")
    kwargs = dict(kwargs or {})
    check_keywords(where, kwargs, accepted)
    return kwargs


def strict(method: Callable) -> Callable:
    """Decorate a method (or ``__init__``) so that unknown keywords raise with the accepted
    list. Python's own message names the bad keyword but not the accepted ones."""
    params = inspect.signature(method).parameters
    accepted = [n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if not takes_any:
            name = type(self).__name__
            if method.__name__ != "__init__":
                name = f"{name}.{method.__name__}"
            check_keywords(name, kwargs, accepted)
        return method(self, *args, **kwargs)

    return wrapper


def check_choice(where: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{where}: {name} must be one of {choices}, got {value!r}")


def check_positive_int(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(value)


def check_finite(where: str, name: str, x: np.ndarray) -> None:
    """Raise if ``x`` holds NaN or infinity, saying how many and where the first is."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number):
        return
    bad = ~np.isfinite(x)
    if bad.any():
        first = np.unravel_index(np.argmax(bad), x.shape)
        raise ValueError(
            f"{where}: {name!r} has {int(bad.sum())} non-finite value(s) "
            f"(of {x.size}); first at index {tuple(int(i) for i in first)}, "
            f"value {x[first]}. Remove or repair these rows first (e.g. with "
            f"Adapter.nan_to_num for missing values)."
        )


def check_keys(where: str, data: Mapping[str, Any], required: Iterable[str]) -> None:
    missing = [k for k in required if k not in data]
    if missing:
        raise KeyError(f"{where}: missing key(s) {missing}; available: {sorted(data)}")


def batch_size_of(where: str, data: Mapping[str, Any]) -> int:
    """The common leading dimension of all arrays in ``data``; raise on disagreement."""
    sizes = {k: np.shape(v)[0] for k, v in data.items() if np.ndim(v) > 0}
    if not sizes:
        raise ValueError(f"{where}: no array with a batch dimension in keys {sorted(data)}")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{where}: arrays disagree in their leading (batch) dimension: {sizes}")
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError(f"{where}: data is empty (batch dimension 0) for keys {sorted(sizes)}")
    return n


def as_key(seed: int | jax.Array | None, where: str = "seed") -> jax.Array:
    """A PRNG key from an int seed, an existing key, or ``None`` (fresh entropy)."""
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(seed, int | np.integer):
        return jax.random.key(int(seed))
    if isinstance(seed, jax.Array):
        if jax.dtypes.issubdtype(seed.dtype, jax.dtypes.prng_key):
            return seed
        if seed.shape == (2,) and seed.dtype == np.uint32:
            return jax.random.wrap_key_data(seed)
    raise TypeError(f"{where}: expected an int seed or a jax PRNG key, got {type(seed).__name__}")
