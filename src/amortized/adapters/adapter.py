"""The Adapter: a chain of transforms from simulator outputs to network inputs and back.

The approximator reads three keys after the forward pass: ``inference_variables`` (the
parameters to infer, ``(batch, dim)``), ``inference_conditions`` (direct conditions,
``(batch, dim_c)``) and ``summary_variables`` (raw data for a summary network, e.g. a set
``(batch, N, features)``). Every invertible step reports its log-det-Jacobian, so
``log_prob`` is a density in the user's original parameter space, and ``inverse`` returns
samples constrained and split into their original names.

>>> adapter = (Adapter()
...     .constrain("sigma", lower=0)
...     .concatenate(["mu", "sigma"], into="inference_variables")
...     .rename("x", "inference_conditions"))
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from .._validation import check_keywords
from ._base import Data, Transform, as_keys
from .elementwise import SUPPORT_CHECKS, Constrain, Log, Sqrt, Standardize
from .routing import Concatenate, Drop, Group, Keep, Rename
from .shape import AsSet, AsTimeSeries, Broadcast, ConvertDtype, ExpandDims, NanToNum, OneHot

TRANSFORMS: dict[str, type[Transform]] = {
    t.name: t
    for t in (
        Constrain,
        Log,
        Sqrt,
        Standardize,
        Rename,
        Group,
        Concatenate,
        Keep,
        Drop,
        AsSet,
        AsTimeSeries,
        Broadcast,
        ConvertDtype,
        ExpandDims,
        NanToNum,
        OneHot,
    )
}

NETWORK_KEYS = (
    "inference_variables",
    "inference_conditions",
    "summary_variables",
    "summary_mask",
)


class Adapter:
    """A chainable list of transforms; each method appends one and returns the adapter."""

    def __init__(self, transforms: Sequence[Transform] | None = None):
        self.transforms: list[Transform] = list(transforms or [])

    # -- building ----------------------------------------------------------------------
    def _add(self, t: Transform) -> Adapter:
        self.transforms.append(t)
        return self

    def rename(self, from_key: str, to_key: str) -> Adapter:
        return self._add(Rename(from_key, to_key))

    def group(self, keys: str | Sequence[str], *, into: str) -> Adapter:
        """Gather ``keys`` into a dict under ``into`` (several sources for a FusionNetwork:
        ``.group(["series", "set"], into="summary_variables")``)."""
        return self._add(Group(keys, into))

    def concatenate(self, keys: str | Sequence[str], *, into: str, axis: int = -1) -> Adapter:
        return self._add(Concatenate(keys, into, axis))

    def keep(self, keys: str | Sequence[str]) -> Adapter:
        return self._add(Keep(keys))

    def drop(self, keys: str | Sequence[str]) -> Adapter:
        return self._add(Drop(keys))

    def constrain(
        self, keys: str | Sequence[str], *, lower=None, upper=None, method: str = "default"
    ) -> Adapter:
        """Map bounded variables to the real line (see :class:`Constrain`): an interval by
        the logit (``method="default"`` or ``"sigmoid"``) or the probit map
        (``"probit"``: a uniform prior becomes a standard normal); a one-sided bound by log
        (``"default"`` or ``"log"``)."""
        return self._add(Constrain(keys, lower=lower, upper=upper, method=method))

    def log(self, keys: str | Sequence[str], *, p1: bool = False) -> Adapter:
        return self._add(Log(keys, p1=p1))

    def sqrt(self, keys: str | Sequence[str]) -> Adapter:
        return self._add(Sqrt(keys))

    def standardize(self, keys: str | Sequence[str], *, mean, std) -> Adapter:
        """Standardize with fixed, known statistics. Statistics learned from training data
        are computed by the approximator (``standardize=`` there)."""
        return self._add(Standardize(keys, mean=mean, std=std))

    def as_set(self, keys: str | Sequence[str]) -> Adapter:
        return self._add(AsSet(keys))

    def as_time_series(self, keys: str | Sequence[str]) -> Adapter:
        return self._add(AsTimeSeries(keys))

    def broadcast(self, keys: str | Sequence[str], *, to: str) -> Adapter:
        return self._add(Broadcast(keys, to))

    def expand_dims(self, keys: str | Sequence[str], *, axis: int) -> Adapter:
        return self._add(ExpandDims(keys, axis))

    def convert_dtype(self, from_dtype: str = "float64", to_dtype: str = "float32") -> Adapter:
        return self._add(ConvertDtype(from_dtype, to_dtype))

    def one_hot(self, keys: str | Sequence[str], num_classes: int) -> Adapter:
        return self._add(OneHot(keys, num_classes))

    def nan_to_num(
        self,
        keys: str | Sequence[str],
        default_value: float = 0.0,
        return_mask: bool = False,
        mask_prefix: str = "mask",
    ) -> Adapter:
        return self._add(NanToNum(keys, default_value, return_mask, mask_prefix))

    @classmethod
    def create_default(
        cls,
        inference_variables: str | Sequence[str],
        inference_conditions: str | Sequence[str] | None = None,
        summary_variables: str | Sequence[str] | None = None,
        summary_mask: str | None = None,
    ) -> Adapter:
        """Cast to float32 and concatenate each group of names into its network key;
        ``summary_mask`` names the ``(batch, N)`` 0/1 array marking observed rows of padded
        sets or series."""
        adapter = cls().convert_dtype("float64", "float32")
        groups = zip(
            NETWORK_KEYS[:3],
            (inference_variables, inference_conditions, summary_variables),
            strict=True,
        )
        for into, names in groups:
            if names is None:
                continue
            adapter.concatenate(as_keys(names, f"BasicWorkflow({into}=)"), into=into)
        if summary_mask is not None:
            if summary_variables is None:
                raise ValueError("summary_mask needs summary_variables")
            adapter.rename(summary_mask, "summary_mask")
        return adapter

    # -- applying ----------------------------------------------------------------------
    def forward(
        self,
        data: Mapping[str, Any],
        *,
        strict: bool = True,
        log_det_jac: bool = False,
        check_support: bool = True,
    ) -> Data | tuple[Data, Data]:
        """Apply every transform in order. With ``log_det_jac=True`` also return the
        elementwise log-det-Jacobian dict (see :mod:`amortized.adapters._base`).
        With ``strict=False`` transforms whose keys are all absent are skipped (used when
        only conditions are given, at sampling time). ``check_support=False`` skips the
        domain checks (e.g. ``constrain``'s bounds): values outside give inf/NaN."""
        if not isinstance(data, Mapping):
            raise TypeError(f"Adapter: expected a dict of arrays, got {type(data).__name__}")
        out: Data = dict(data)
        ldj: Data | None = {} if log_det_jac else None
        token = SUPPORT_CHECKS.set(bool(check_support))
        try:
            for t in self.transforms:
                out, ldj = t.forward(out, ldj, strict)
        finally:
            SUPPORT_CHECKS.reset(token)
        return (out, ldj) if log_det_jac else out

    def inverse(self, data: Mapping[str, Any], *, strict: bool = False) -> Data:
        """Undo the transforms in reverse order (by default skipping absent keys)."""
        out: Data = dict(data)
        for t in reversed(self.transforms):
            out = t.inverse(out, strict)
        return out

    def __call__(
        self, data: Mapping[str, Any], *, inverse: bool = False, strict: bool = True, **kwargs: Any
    ):
        check_keywords("Adapter.__call__", kwargs, ["log_det_jac"])
        if inverse:
            return self.inverse(data, strict=strict)
        return self.forward(data, strict=strict, **kwargs)

    # -- persistence -------------------------------------------------------------------
    def get_config(self) -> list[dict[str, Any]]:
        return [{"name": t.name, "params": t.params()} for t in self.transforms]

    @classmethod
    def from_config(cls, config: Sequence[Mapping[str, Any]]) -> Adapter:
        transforms = []
        for i, entry in enumerate(config):
            name = entry.get("name")
            if name not in TRANSFORMS:
                raise ValueError(
                    f"Adapter config entry {i}: unknown transform {name!r}; "
                    f"known: {sorted(TRANSFORMS)}"
                )
            transforms.append(TRANSFORMS[name].from_params(dict(entry["params"])))
        return cls(transforms)

    def copy(self) -> Adapter:
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        return "Adapter([" + ", ".join(repr(t) for t in self.transforms) + "])"

    def __len__(self) -> int:
        return len(self.transforms)
