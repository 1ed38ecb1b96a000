"""Boundary checks on what an approximator is conditioned on.

Two silent failures are stopped here:

- **Data the model never sees.** Condition keys that no network input depends on (found with
  :func:`amortized.adapters.usage.key_routes`) would be ignored; sampling raises and names
  them, training warns (:class:`UnusedDataWarning`).
- **Conditions far outside the training data.** A network extrapolates without a word. The
  per-feature range ``[min, max]`` of the training conditions (direct conditions, and the
  values of every feature over the rows of summary variables) is saved with the model; a
  dataset with a feature beyond ``min - MARGIN * (max - min)`` or ``max + MARGIN * (max -
  min)`` gets an :class:`OutOfDistributionWarning` naming the dataset, the network input and
  the input keys it comes from. This is a cheap screen with a wide margin on the raw inputs
  (NumPy, no network pass, so it compiles nothing), meant to catch absurd inputs; the
  calibrated out-of-distribution test, in the space of the learned summaries, is the
  amortized Bayesian workflow's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from ..adapters.usage import (
    CONDITION_KEYS,
    condition_sources,
    head_rows,
    key_routes,
    unused_keys,
)

#: how far past the training range (as a fraction of its width) a feature may lie
MARGIN = 0.5
#: datasets named in one warning
MAX_LISTED = 5

Ranges = dict[str, dict[str, np.ndarray]]


class UnusedDataWarning(UserWarning):
    """Training data holds keys that reach no network input."""


class OutOfDistributionWarning(UserWarning):
    """A condition lies far outside the range of the training conditions."""


def unused_condition_error(
    where: str, routes: Mapping[str, set[str]], conditional: bool, trained_on: Sequence[str]
) -> KeyError | None:
    """The error for condition keys the approximator does not use (None when all are used).

    Keys that only reach ``inference_variables`` (true parameters inside held-out
    simulations) are not conditions and pass."""
    unused = unused_keys(routes)
    if not conditional:
        given = condition_sources(routes) + unused
        if not given:
            return None
        return KeyError(
            f"{where}: this approximator is unconditional (it was trained without "
            f"inference_conditions or summary_variables, so it learned one density that "
            f"ignores any data); the condition key(s) {sorted(given)} would be ignored. Route "
            f"the data in the adapter (e.g. .rename('x', 'inference_conditions')) and train "
            f"again, or sample with conditions={{}}"
        )
    if not unused:
        return None
    return KeyError(
        f"{where}: condition key(s) {unused} reach no input of the approximator and would be "
        f"ignored; it was trained on conditions from {list(trained_on)}. Remove them, or "
        f"route them in the adapter and train again"
    )


def unused_data_message(routes: Mapping[str, set[str]], conditional: bool) -> str | None:
    """The training-time warning text for keys that reach no network input."""
    unused = unused_keys(routes)
    if not unused:
        return None
    head = (
        "the approximator is unconditional: no key reaches inference_conditions or "
        "summary_variables, so it learns one density q(theta) that ignores the data. "
        if not conditional
        else ""
    )
    return (
        f"fit: {head}Training data key(s) {unused} reach no network input and are not "
        f"used; route them in the adapter (e.g. .rename(key, 'inference_conditions') or "
        f".concatenate([...], into='inference_conditions')) if the posterior should depend "
        f"on them, or drop them from the data"
    )


def training_keys(adapter, data: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """The input keys of training ``data`` that reach the network's conditions, and the
    warning text for keys that reach no network input (None when all are used)."""
    head = head_rows(data)
    routes = key_routes(adapter, head)
    adapted = adapter.forward(head, strict=False) if adapter is not None else data
    conditional = "inference_conditions" in adapted or "summary_variables" in adapted
    return condition_sources(routes), unused_data_message(routes, conditional)


def condition_routes(
    adapter, conditions: Any, where: str, conditional: bool, trained_on: Sequence[str] | None
) -> dict[str, set[str]]:
    """The network inputs each condition key reaches; raises for keys that reach none
    (:func:`unused_condition_error`) and for conditions that are not a dict."""
    if not isinstance(conditions, Mapping):
        raise TypeError(
            f"{where}: conditions must be a dict of arrays, got {type(conditions).__name__}"
        )
    routes = key_routes(adapter, head_rows(conditions))
    err = unused_condition_error(
        where, routes, conditional, trained_on if trained_on is not None else ["(unknown)"]
    )
    if err is not None:
        raise err
    return routes


def _feature_range(x: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-dataset ``(min, max)`` over every axis but the batch and the last, ``(B, F)``;
    rows whose mask is 0 do not count."""
    x = np.asarray(x, np.float64)
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    if mask is not None and x.ndim == 3:
        m = np.asarray(mask)[:, :, None] > 0
        lo = np.where(m, flat, np.inf).min(axis=1)
        hi = np.where(m, flat, -np.inf).max(axis=1)
        return lo, hi
    return flat.min(axis=1), flat.max(axis=1)


def _per_dataset(arrays: Mapping[str, Any]) -> dict[str, tuple]:
    """``{name: (min, max)}`` per dataset ``(B, F)`` of each checked condition."""
    out = {}
    ic = arrays.get("inference_conditions")
    if ic is not None:
        ic = np.asarray(ic)
        out["inference_conditions"] = (ic, ic)
    sv = arrays.get("summary_variables")
    if sv is not None and not isinstance(sv, Mapping):
        out["summary_variables"] = _feature_range(sv, arrays.get("summary_mask"))
    return out


def compute_ranges(arrays: Mapping[str, Any]) -> Ranges:
    """Per-feature ``{"min", "max"}`` over the training datasets of the direct conditions
    and of the summary variables' (observed) rows."""
    return {
        name: {"min": lo.min(axis=0), "max": hi.max(axis=0)}
        for name, (lo, hi) in _per_dataset(arrays).items()
    }


def widen_ranges(old: Ranges | None, arrays: Mapping[str, Any], rows: int) -> Ranges:
    """``old`` widened by the ranges of the first ``rows`` datasets of the network arrays
    ``arrays`` (a later fit adds to what earlier ones saw)."""
    head = {
        k: jax.tree.map(lambda v: np.asarray(v)[:rows], a)
        for k, a in arrays.items()
        if k != "inference_variables"
    }
    new = compute_ranges(head)
    old = old or {}
    return {
        k: {
            "min": np.minimum(v["min"], old[k]["min"]) if k in old else v["min"],
            "max": np.maximum(v["max"], old[k]["max"]) if k in old else v["max"],
        }
        for k, v in new.items()
    }


def outside(ranges: Ranges, arrays: Mapping[str, Any]) -> dict[int, dict]:
    """``{dataset: {name: [(feature, value, (lo, hi)), ...]}}`` for the datasets with a
    feature past the training range by more than ``MARGIN`` times its width."""
    found: dict[int, dict] = {}
    for name, (lo, hi) in _per_dataset(arrays).items():
        if name not in ranges:
            continue
        tmin, tmax = ranges[name]["min"], ranges[name]["max"]
        if np.shape(tmin) != np.shape(lo)[1:]:
            continue
        width = tmax - tmin
        low, high = tmin - MARGIN * width, tmax + MARGIN * width
        bad = (lo < low) | (hi > high)
        for i, j in zip(*np.nonzero(bad), strict=True):
            value = lo[i, j] if lo[i, j] < low[j] else hi[i, j]
            found.setdefault(int(i), {}).setdefault(name, []).append(
                (int(j), float(value), (float(tmin[j]), float(tmax[j])))
            )
    return found


def ood_message(where: str, found: dict[int, dict], num_datasets: int, sources) -> str:
    """The :class:`OutOfDistributionWarning` text: which datasets, which inputs, from which
    keys (``sources`` ``{network key: [input keys]}``)."""
    lines = []
    for i in sorted(found)[:MAX_LISTED]:
        parts = []
        for name, feats in found[i].items():
            src = sources.get(name)
            origin = f" (from {src})" if src else ""
            shown = ", ".join(
                f"feature {j} = {v:.4g} (trained on [{lo:.4g}, {hi:.4g}])"
                for j, v, (lo, hi) in feats[:3]
            )
            more = f" and {len(feats) - 3} more" if len(feats) > 3 else ""
            parts.append(f"{name}{origin}: {shown}{more}")
        lines.append(f"dataset {i}: " + "; ".join(parts))
    if len(found) > MAX_LISTED:
        lines.append(f"... and {len(found) - MAX_LISTED} more dataset(s)")
    return (
        f"{where}: {len(found)} of {num_datasets} dataset(s) have conditions far outside the "
        f"training data (more than {MARGIN:g} times the training range past its edges); their "
        f"posteriors are extrapolations and may be absurd. Check them with "
        f"bf.AmortizedBayesianWorkflow (out-of-distribution test, importance sampling, MCMC). "
        + " | ".join(lines)
    )


def out_of_range_message(
    ranges: Ranges | None, arrays: Mapping[str, Any], routes, where: str
) -> str | None:
    """The warning text for the datasets of the network ``arrays`` with a condition far
    outside the training ``ranges`` (None when there are none, or no ranges)."""
    if not ranges or not arrays:
        return None
    found = outside(ranges, arrays)
    if not found:
        return None
    num = int(jax.tree.leaves(arrays)[0].shape[0])
    return ood_message(where, found, num, sources_by_network_key(routes))


def sources_by_network_key(routes: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """``{network key: input keys routed to it}`` for the condition network keys."""
    return {
        net: sorted(k for k, r in routes.items() if net in r)
        for net in CONDITION_KEYS
        if any(net in r for r in routes.values())
    }
