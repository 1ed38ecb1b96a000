"""Routing transforms: move, merge, split and select keys. Log-det-Jacobians move with data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._base import Transform, as_keys, missing, xp_of


class Rename(Transform):
    """Rename ``from_key`` to ``to_key`` (inverse renames back)."""

    name = "rename"

    def __init__(self, from_key: str, to_key: str):
        self.from_key, self.to_key = as_keys(from_key, "rename")[0], as_keys(to_key, "rename")[0]

    def forward(self, data, ldj, strict):
        if missing(self.name, data, [self.from_key], strict):
            return data, ldj
        data = dict(data)
        data[self.to_key] = data.pop(self.from_key)
        if ldj is not None and self.from_key in ldj:
            ldj = dict(ldj)
            ldj[self.to_key] = ldj.pop(self.from_key)
        return data, ldj

    def inverse(self, data, strict):
        if missing(self.name, data, [self.to_key], strict):
            return data
        data = dict(data)
        data[self.from_key] = data.pop(self.to_key)
        return data

    def params(self):
        return {"from_key": self.from_key, "to_key": self.to_key}


class Concatenate(Transform):
    """Concatenate ``keys`` along ``axis`` (default last) into ``into``.

    The sizes along ``axis`` are recorded on the first forward call and saved with the
    adapter, so that ``inverse`` splits samples back into their original names.
    """

    name = "concatenate"

    def __init__(self, keys: Sequence[str], into: str, axis: int = -1, sizes=None):
        self.keys = as_keys(keys, "concatenate")
        self.into = as_keys(into, "concatenate")[0]
        self.axis = int(axis)
        self.sizes = None if sizes is None else [int(s) for s in sizes]

    def forward(self, data, ldj, strict):
        if missing(self.name, data, self.keys, strict):
            return data, ldj
        arrays = [data[k] for k in self.keys]
        xp = xp_of(arrays[0])
        ndims = {k: np.ndim(a) for k, a in zip(self.keys, arrays, strict=True)}
        if len(set(ndims.values())) > 1:
            shapes = {k: tuple(np.shape(a)) for k, a in zip(self.keys, arrays, strict=True)}
            raise ValueError(
                f"Adapter.concatenate into {self.into!r}: arrays need the same number of "
                f"dimensions, got shapes {shapes}"
            )
        sizes = [int(np.shape(a)[self.axis]) for a in arrays]
        if self.sizes is None:
            self.sizes = sizes
        elif self.sizes != sizes:
            raise ValueError(
                f"Adapter.concatenate into {self.into!r}: sizes along axis {self.axis} of "
                f"{self.keys} are {sizes}, but this adapter was built with {self.sizes}"
            )
        data = {k: v for k, v in data.items() if k not in self.keys}
        data[self.into] = xp.concatenate(arrays, axis=self.axis)
        if ldj is not None and any(k in ldj for k in self.keys):
            parts = [
                ldj[k] if k in ldj else xp.zeros(np.shape(a))
                for k, a in zip(self.keys, arrays, strict=True)
            ]
            ldj = {k: v for k, v in ldj.items() if k not in self.keys}
            ldj[self.into] = xp.concatenate(parts, axis=self.axis)
        return data, ldj

    def inverse(self, data, strict):
        if missing(self.name, data, [self.into], strict):
            return data
        if self.sizes is None:
            raise RuntimeError(
                f"Adapter.concatenate into {self.into!r}: inverse before any forward call; "
                f"the sizes to split into are unknown"
            )
        x = data[self.into]
        xp = xp_of(x)
        data = dict(data)
        del data[self.into]
        splits = np.cumsum(self.sizes)[:-1].tolist()
        for k, part in zip(self.keys, xp.split(x, splits, axis=self.axis), strict=True):
            data[k] = part
        return data

    def params(self):
        return {"keys": self.keys, "into": self.into, "axis": self.axis, "sizes": self.sizes}


class Keep(Transform):
    """Keep only ``keys`` (others are dropped); the inverse passes data through."""

    name = "keep"
    invertible = False

    def __init__(self, keys):
        self.keys = as_keys(keys, "keep")

    def forward(self, data, ldj, strict):
        if strict:
            missing(self.name, data, self.keys, strict)
        data = {k: v for k, v in data.items() if k in self.keys}
        if ldj is not None:
            ldj = {k: v for k, v in ldj.items() if k in self.keys}
        return data, ldj

    def inverse(self, data, strict):
        return data

    def params(self):
        return {"keys": self.keys}


class Drop(Transform):
    """Drop ``keys``; the inverse passes data through."""

    name = "drop"
    invertible = False

    def __init__(self, keys):
        self.keys = as_keys(keys, "drop")

    def forward(self, data, ldj, strict):
        data = {k: v for k, v in data.items() if k not in self.keys}
        if ldj is not None:
            ldj = {k: v for k, v in ldj.items() if k not in self.keys}
        return data, ldj

    def inverse(self, data, strict):
        return data

    def params(self):
        return {"keys": self.keys}


class Group(Transform):
    """Gather ``keys`` into one dict under ``into`` (``{key: array}``), e.g. several data
    sources for a :class:`~amortized.networks.FusionNetwork` in ``summary_variables``;
    inverse spreads them out again."""

    name = "group"

    def __init__(self, keys: Sequence[str], into: str):
        self.keys = as_keys(keys, "group")
        self.into = as_keys(into, "group")[0]

    def forward(self, data, ldj, strict):
        if missing(self.name, data, self.keys, strict):
            return data, ldj
        data = dict(data)
        data[self.into] = {k: data.pop(k) for k in self.keys}
        return data, ldj

    def inverse(self, data, strict):
        if missing(self.name, data, [self.into], strict):
            return data
        data = dict(data)
        data.update(data.pop(self.into))
        return data

    def params(self):
        return {"keys": list(self.keys), "into": self.into}
