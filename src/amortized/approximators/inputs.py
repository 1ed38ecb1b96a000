"""The boundary of an approximator: user dicts to network arrays, checked once.

Pure functions: the adapter's output becomes float32 arrays under the network keys, with
every check that names what was expected and what arrived (missing or extra network keys,
non-numeric or non-finite values and the input key they came from, shapes that disagree
with training, condition maps without an image target, malformed summary masks). The
approximator classes call these with their trained shapes; nothing here holds state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import batch_size_of, check_finite
from ..adapters import NETWORK_KEYS
from .core import IC, IV, SM, SV


def adapt(adapter, data: Mapping[str, Any], need_variables: bool, where: str) -> dict:
    """``data`` through ``adapter`` (None: already under network keys)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{where}: expected a dict of arrays, got {type(data).__name__}")
    return adapter.forward(data, strict=need_variables) if adapter is not None else dict(data)


@contextlib.contextmanager
def nonfinite_traced(data: Mapping[str, Any]):
    """Re-raise a non-finite error from checking adapted data with the input key(s) of
    ``data`` it comes from (the adapter may have renamed or merged them)."""
    try:
        yield
    except ValueError as e:
        culprits = _nonfinite_keys(data)
        if "non-finite" in str(e) and culprits:
            raise ValueError(
                f"{e} It comes from input key(s) {culprits}: "
                f"{_describe_nonfinite(data, culprits[0])}"
            ) from None
        raise


def network_arrays(
    adapted: Mapping[str, Any],
    *,
    need_variables: bool,
    where: str,
    has_summary: bool,
    trained_shapes: Mapping[str, tuple] | None,
) -> dict[str, jax.Array]:
    """The network keys of adapted data as float32 arrays, ``(batch, ...)`` each.

    ``trained_shapes`` (``{key: per-row shape}`` of a trained approximator, or None before
    training) are enforced for the inference variables and conditions; sets may change
    size. ``need_variables=False`` drops ``inference_variables`` (conditions only)."""
    out = {k: adapted[k] for k in NETWORK_KEYS if k in adapted}
    if need_variables and IV not in out:
        raise KeyError(
            f"{where}: after the adapter there is no 'inference_variables'; keys are "
            f"{sorted(adapted)}. Route parameters there (e.g. Adapter.concatenate(..., "
            f"into='inference_variables') or BasicWorkflow(inference_variables=[...]))"
        )
    if not need_variables:
        out.pop(IV, None)
    for k, v in leaves(out).items():
        v = np.asarray(v)
        if not np.issubdtype(v.dtype, np.number) and v.dtype != bool:
            raise TypeError(f"{where}: {k!r} must be numeric, got dtype {v.dtype}")
        check_finite(where, k, v)
    out = {
        k: {n: np.asarray(a) for n, a in v.items()} if isinstance(v, Mapping) else np.asarray(v)
        for k, v in out.items()
    }
    if out:
        batch_size_of(where, leaves(out))  # raises when the keys disagree in batch size
    for k in (IV, IC):
        if k in out and out[k].ndim not in (2, 4):
            raise ValueError(
                f"{where}: {k!r} must have shape (batch, features), or (batch, height, "
                f"width, channels) for an image, got {out[k].shape}; concatenate "
                f"variables along the last axis (add a channel axis to an image with "
                f"Adapter.expand_dims), and route sets or time series to "
                f"'summary_variables' with a summary network"
            )
    _check_condition_map(where, out, (trained_shapes or {}).get(IV))
    if SV in out and not has_summary:
        raise ValueError(
            f"{where}: 'summary_variables' (shape {_shape(out[SV])}) needs a summary_network; "
            f"add one, or route the data to 'inference_conditions' instead"
        )
    if SV not in out and has_summary and out:
        raise KeyError(
            f"{where}: a summary_network is set but no 'summary_variables' arrived; "
            f"keys are {sorted(out)}"
        )
    if SM in out:
        _check_mask(where, out)
    if trained_shapes is not None:
        check_trained_shapes(out, trained_shapes, where)
    return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), out)


def check_trained_shapes(
    arrays: Mapping[str, np.ndarray], trained_shapes: Mapping[str, tuple], where: str
) -> None:
    """Per-row shapes must be those of training (set sizes and sources may vary: the
    summary network checks those), and trained conditions must be present."""
    for k, v in arrays.items():
        expected = trained_shapes.get(k)
        if k in (SV, SM):
            continue
        if expected is not None and tuple(v.shape[1:]) != expected:
            raise ValueError(
                f"{where}: {k!r} has shape {tuple(v.shape)}; this approximator was trained "
                f"with shape (batch, {', '.join(map(str, expected))})"
            )
    if IC in trained_shapes and IC not in arrays:
        raise KeyError(
            f"{where}: missing 'inference_conditions' that the approximator was trained with"
        )


def row_shapes(arrays: Mapping[str, Any]) -> dict[str, tuple]:
    """``{key: per-row shape}`` of network arrays (``()`` for a dict of sources)."""
    return {k: () if isinstance(v, Mapping) else tuple(v.shape[1:]) for k, v in arrays.items()}


def rows(arrays: Mapping[str, Any]) -> int:
    """The number of rows (datasets) of a dict of arrays."""
    return int(jax.tree.leaves(arrays)[0].shape[0])


def leaves(out: Mapping[str, Any]) -> dict[str, Any]:
    """Flat ``{name: array}``; a dict under a network key (several sources) gives
    ``key/source`` names."""
    flat = {}
    for k, v in out.items():
        if isinstance(v, Mapping):
            flat.update({f"{k}/{n}": a for n, a in v.items()})
        else:
            flat[k] = v
    return flat


def _shape(v: Any):
    if isinstance(v, Mapping):
        return {n: tuple(np.shape(a)) for n, a in v.items()}
    return tuple(np.shape(v))


def _check_condition_map(where: str, arrays: Mapping[str, Any], trained_target) -> None:
    """A condition map ``(batch, H, W, D)`` goes with an image target of the same height
    and width (channel-wise concatenation)."""
    if IC not in arrays or arrays[IC].ndim != 4:
        return
    target = tuple(arrays[IV].shape[1:]) if IV in arrays else trained_target
    if target is None:
        return
    if len(target) != 3 or tuple(target[:2]) != tuple(arrays[IC].shape[1:3]):
        raise ValueError(
            f"{where}: 'inference_conditions' is a condition map of shape "
            f"{tuple(arrays[IC].shape)}; it is concatenated channel-wise with the target, "
            f"which needs an image target of the same height and width, got target shape "
            f"(batch, {', '.join(map(str, target))}). Summarize image observations of a "
            f"vector target with a summary network (ConvolutionalNetwork) instead"
        )


def _check_mask(where: str, out: Mapping[str, np.ndarray]) -> None:
    """``summary_mask`` must be ``(B, N)`` of 0/1 matching the summary variables' rows, and
    every dataset needs at least one observed row (per source when both are dicts)."""
    if SV not in out:
        raise KeyError(f"{where}: 'summary_mask' arrived without 'summary_variables'")
    mask, sv = out[SM], out[SV]
    if isinstance(mask, Mapping) or isinstance(sv, Mapping):
        if not (isinstance(mask, Mapping) and isinstance(sv, Mapping)) or not set(mask) <= set(sv):
            raise ValueError(
                f"{where}: with several sources, 'summary_mask' must be a dict whose keys are "
                f"among the sources of 'summary_variables' {sorted(_shape(sv))}; got "
                f"{_shape(mask)}"
            )
        for n in mask:
            _check_mask(f"{where} (source {n!r})", {SM: mask[n], SV: sv[n]})
        return
    if mask.ndim != 2 or mask.shape != sv.shape[:2]:
        raise ValueError(
            f"{where}: 'summary_mask' must have shape (batch, N) = {sv.shape[:2]} to match "
            f"'summary_variables' {sv.shape}, got {mask.shape}"
        )
    if not np.all((mask == 0) | (mask == 1)):
        raise ValueError(f"{where}: 'summary_mask' must hold only 0 and 1")
    empty = np.flatnonzero(mask.sum(axis=1) == 0)
    if empty.size:
        raise ValueError(
            f"{where}: {empty.size} dataset(s) have no observed rows in 'summary_mask' "
            f"(all missing), e.g. index {int(empty[0])}; remove them or observe at least one row"
        )


def _nonfinite_keys(data: Mapping[str, Any]) -> list[str]:
    bad = []
    for k, v in data.items():
        v = np.asarray(v)
        if np.issubdtype(v.dtype, np.number) and not np.all(np.isfinite(v)):
            bad.append(k)
    return bad


def _describe_nonfinite(data: Mapping[str, Any], key: str) -> str:
    try:
        check_finite("input", key, np.asarray(data[key]))
    except ValueError as e:
        return str(e).split(". Remove")[0].removeprefix("input: ")
    return ""
