"""Which input keys reach which network inputs: the check behind "data the model never sees".

An adapter is a chain of arbitrary transforms, so where a key goes is found by experiment, not
by reading the chain: :func:`key_routes` removes one input key at a time (or, where removing
it makes a transform raise, shifts its rows by one, or its values where all rows agree) and
records which network keys (``inference_variables``, ``inference_conditions``,
``summary_variables``, ``summary_mask``) changed. A key that changes none of them is not
used by the model: a condition passed under it would be ignored without a word, which is the
failure this module exists to prevent.

Only a few rows are needed (the adapter acts row by row), so callers pass a small slice.

>>> import numpy as np
>>> from amortized.adapters import Adapter
>>> adapter = (Adapter().concatenate(["mu", "sigma"], into="inference_variables")
...            .rename("x", "inference_conditions"))
>>> data = {"mu": np.zeros((2, 1)), "sigma": np.ones((2, 1)), "x": np.ones((2, 3)),
...         "N": np.full((2, 1), 3.0)}
>>> routes = key_routes(adapter, data)
>>> routes["x"], routes["mu"], routes["N"]
({'inference_conditions'}, {'inference_variables'}, set())
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

NETWORK_KEYS = (
    "inference_variables",
    "inference_conditions",
    "summary_variables",
    "summary_mask",
)
CONDITION_KEYS = ("inference_conditions", "summary_variables", "summary_mask")
#: rows of each array used to trace routes (the adapter acts row by row)
TRACE_ROWS = 8


def _flat(out: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{network_key or network_key/source: array}`` of an adapter's output."""
    flat = {}
    for k in NETWORK_KEYS:
        v = out.get(k)
        if v is None:
            continue
        if isinstance(v, Mapping):
            flat.update({f"{k}/{n}": np.asarray(a) for n, a in v.items()})
        else:
            flat[k] = np.asarray(v)
    return flat


def _changed(base: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> set[str]:
    """Network keys whose arrays differ between two adapter outputs."""
    changed = set()
    for name in set(base) | set(other):
        a, b = base.get(name), other.get(name)
        same = (
            a is not None
            and b is not None
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=np.issubdtype(a.dtype, np.inexact))
        )
        if not same:
            changed.add(name.split("/")[0])
    return changed


def head_rows(data: Mapping[str, Any], rows: int = TRACE_ROWS) -> dict[str, Any]:
    """The first ``rows`` rows of every array whose leading axis is the batch (the most
    common leading length); other values (shared scalars) as they are."""
    lengths = [np.shape(v)[0] for v in data.values() if np.ndim(v) >= 1]
    if not lengths:
        return dict(data)
    batch = max(set(lengths), key=lengths.count)
    return {
        k: (np.asarray(v)[:rows] if np.ndim(v) >= 1 and np.shape(v)[0] == batch else v)
        for k, v in data.items()
    }


def key_routes(adapter, data: Mapping[str, Any]) -> dict[str, set[str]]:
    """``{input key: set of network keys it changes}`` for every key of ``data``.

    ``adapter`` may be None (data already under the network keys). A key whose removal
    makes the adapter raise (it is needed) and whose rows cannot be told apart gets
    ``{"?"}``: used, route unknown. A key that the adapter drops by name
    (``Adapter.drop``) gets ``{"dropped"}``: unused, but on purpose.
    """
    if adapter is None:
        return {k: ({k} if k in NETWORK_KEYS else set()) for k in data}
    dropped = {k for t in adapter.transforms if t.name == "drop" for k in t.keys}

    def run(d):
        return _flat(adapter.forward(d, strict=False, check_support=False))

    with np.errstate(all="ignore"):
        base = run(data)
        routes = {}
        for k in data:
            try:
                routes[k] = _changed(base, run({n: v for n, v in data.items() if n != k}))
                continue
            except (KeyError, ValueError, TypeError, IndexError):
                pass
            v = np.asarray(data[k])
            other = np.roll(v, 1, axis=0) if v.ndim else v
            if np.array_equal(other, v) and np.issubdtype(v.dtype, np.floating):
                other = v + 0.5  # support checks are off: a value outside gives NaN
            if np.array_equal(other, v):
                routes[k] = {"?"}
                continue
            try:
                routes[k] = _changed(base, run({**data, k: other})) or {"?"}
            except (KeyError, ValueError, TypeError, IndexError):
                routes[k] = {"?"}
    for k in dropped & set(routes):
        routes[k] = routes[k] or {"dropped"}
    return routes


def unused_keys(routes: Mapping[str, set[str]]) -> list[str]:
    """Keys that reach no network input."""
    return sorted(k for k, r in routes.items() if not r)


def dropped_keys(routes: Mapping[str, set[str]]) -> list[str]:
    """Keys that the adapter drops by name."""
    return sorted(k for k, r in routes.items() if r == {"dropped"})


def condition_sources(routes: Mapping[str, set[str]]) -> list[str]:
    """Keys that reach a condition of the network (direct conditions, summary inputs)."""
    return sorted(k for k, r in routes.items() if r & set(CONDITION_KEYS) or "?" in r)
