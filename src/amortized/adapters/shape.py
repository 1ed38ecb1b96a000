"""Shape and type transforms: expand_dims, as_set, as_time_series, broadcast, convert_dtype,
one_hot, nan_to_num. Volume-preserving where invertible (ldj entries reshape with the data)."""

from __future__ import annotations

import numpy as np

from ._base import Transform, as_keys, missing, xp_of


class ExpandDims(Transform):
    """Insert a length-1 axis at ``axis`` of each key; the inverse removes it."""

    name = "expand_dims"

    def __init__(self, keys, axis: int):
        self.keys = as_keys(keys, self.name)
        self.axis = int(axis)

    def forward(self, data, ldj, strict):
        if missing(self.name, data, self.keys, strict):
            return data, ldj
        data = dict(data)
        ldj = None if ldj is None else dict(ldj)
        for k in self.keys:
            xp = xp_of(data[k])
            data[k] = xp.expand_dims(data[k], self.axis)
            if ldj is not None and k in ldj:
                ldj[k] = xp.expand_dims(ldj[k], self.axis)
        return data, ldj

    def inverse(self, data, strict):
        if missing(self.name, data, self.keys, strict):
            return data
        data = dict(data)
        for k in self.keys:
            data[k] = xp_of(data[k]).squeeze(data[k], self.axis)
        return data

    def params(self):
        return {"keys": self.keys, "axis": self.axis}


class AsSet(ExpandDims):
    """Mark ``keys`` as exchangeable sets ``(batch, N, features)``: a ``(batch, N)`` array
    gains a trailing feature axis; arrays with 3 or more axes pass unchanged."""

    name = "as_set"
    min_ndim = 3

    def __init__(self, keys):
        super().__init__(keys, axis=-1)

    def forward(self, data, ldj, strict):
        if missing(self.name, data, self.keys, strict):
            return data, ldj
        for k in self.keys:
            if np.ndim(data[k]) < 2:
                raise ValueError(
                    f"Adapter.{self.name}: {k!r} needs shape (batch, N[, features]), "
                    f"got {np.shape(data[k])}"
                )
        todo = [k for k in self.keys if np.ndim(data[k]) < self.min_ndim]
        if not todo:
            return data, ldj
        return ExpandDims(todo, -1).forward(data, ldj, strict)

    def inverse(self, data, strict):
        return data

    def params(self):
        return {"keys": self.keys}


class AsTimeSeries(AsSet):
    """Mark ``keys`` as time series ``(batch, T, features)``; shapes as :class:`AsSet`."""

    name = "as_time_series"


class Broadcast(Transform):
    """Broadcast each key (e.g. a shared sample size ``N``) to the batch size of ``to``.

    A scalar becomes ``(batch, 1)``; an array of shape ``s`` becomes ``(batch, *s)``.
    The inverse takes the first row.
    """

    name = "broadcast"
    invertible = False

    def __init__(self, keys, to: str):
        self.keys = as_keys(keys, self.name)
        self.to = as_keys(to, self.name)[0]

    def forward(self, data, ldj, strict):
        if missing(self.name, data, self.keys, strict):
            return data, ldj
        if self.to not in data:
            raise KeyError(
                f"Adapter.broadcast: target key {self.to!r} missing; available: {sorted(data)}"
            )
        batch = np.shape(data[self.to])[0]
        data = dict(data)
        for k in self.keys:
            xp = xp_of(data[k])
            v = xp.asarray(data[k])
            if v.ndim == 0:
                v = v.reshape(1)
            data[k] = xp.broadcast_to(v[None], (batch,) + v.shape)
        return data, ldj

    def inverse(self, data, strict):
        return data

    def params(self):
        return {"keys": self.keys, "to": self.to}


class ConvertDtype(Transform):
    """Cast every array of dtype ``from_dtype`` to ``to_dtype`` (and back on inverse)."""

    name = "convert_dtype"

    def __init__(self, from_dtype: str = "float64", to_dtype: str = "float32"):
        self.from_dtype, self.to_dtype = str(np.dtype(from_dtype)), str(np.dtype(to_dtype))

    def forward(self, data, ldj, strict):
        out = {}
        for k, v in data.items():
            if hasattr(v, "dtype") and str(v.dtype) == self.from_dtype:
                v = v.astype(self.to_dtype)
            out[k] = v
        return out, ldj

    def inverse(self, data, strict):
        return data  # samples stay in the network's precision

    def params(self):
        return {"from_dtype": self.from_dtype, "to_dtype": self.to_dtype}


class OneHot(Transform):
    """Integer classes ``(batch, ...)`` to one-hot ``(batch, ..., num_classes)``."""

    name = "one_hot"
    invertible = False

    def __init__(self, keys, num_classes: int):
        self.keys = as_keys(keys, self.name)
        self.num_classes = int(num_classes)

    def forward(self, data, ldj, strict):
        if missing(self.name, data, self.keys, strict):
            return data, ldj
        data = dict(data)
        for k in self.keys:
            v = np.asarray(data[k])
            if not np.all((v == np.round(v)) & (v >= 0) & (v < self.num_classes)):
                raise ValueError(
                    f"Adapter.one_hot: {k!r} must hold integers in [0, {self.num_classes}), "
                    f"got values in [{v.min()}, {v.max()}]"
                )
            data[k] = np.eye(self.num_classes, dtype=np.float32)[v.astype(int)]
        return data, ldj

    def inverse(self, data, strict):
        if missing(self.name, data, self.keys, strict):
            return data
        data = dict(data)
        for k in self.keys:
            data[k] = np.argmax(np.asarray(data[k]), axis=-1)
        return data

    def params(self):
        return {"keys": self.keys, "num_classes": self.num_classes}


class NanToNum(Transform):
    """Replace NaN in each key by ``default_value``; with ``return_mask``, also write
    ``f"{mask_prefix}_{key}"`` holding 1 where observed and 0 where missing."""

    name = "nan_to_num"
    invertible = False

    def __init__(
        self, keys, default_value: float = 0.0, return_mask: bool = False, mask_prefix: str = "mask"
    ):
        self.keys = as_keys(keys, self.name)
        self.default_value = float(default_value)
        self.return_mask = bool(return_mask)
        self.mask_prefix = str(mask_prefix)

    def forward(self, data, ldj, strict):
        if missing(self.name, data, self.keys, strict):
            return data, ldj
        data = dict(data)
        for k in self.keys:
            xp = xp_of(data[k])
            v = data[k]
            nan = xp.isnan(v)
            data[k] = xp.where(nan, xp.asarray(self.default_value, dtype=v.dtype), v)
            if self.return_mask:
                data[f"{self.mask_prefix}_{k}"] = (~nan).astype(v.dtype)
        return data, ldj

    def inverse(self, data, strict):
        return data

    def params(self):
        return {
            "keys": self.keys,
            "default_value": self.default_value,
            "return_mask": self.return_mask,
            "mask_prefix": self.mask_prefix,
        }
