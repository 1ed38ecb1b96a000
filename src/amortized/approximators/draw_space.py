"""Draws between the network's space and the user's: the adapter's inverse, its forward
map with log|det J| (densities in the original space), and the round trip that finds the
draws an inverse map saturated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..adapters import NETWORK_KEYS
from .core import IV


def to_user_space(adapter, z: np.ndarray) -> dict[str, np.ndarray]:
    """Network-space draws ``(..., dim)`` as ``{name: (..., *shape)}`` in the original
    space (under ``inference_variables`` without an adapter)."""
    if adapter is None:
        return {IV: z}
    out = adapter.inverse({IV: z})
    return {k: np.asarray(v) for k, v in out.items() if k not in NETWORK_KEYS or k == IV}


def adapt_draws(adapter, draws: Mapping[str, Any], n: int, s: int, check_support: bool = True):
    """Draws ``{name: (n, s, ...)}`` through the adapter: the adapted arrays (rows
    flattened to ``n * s``) and the adapter's log|det J| per draw, ``(n, s)``."""
    flat = {k: np.reshape(v, (n * s, *np.shape(v)[2:])) for k, v in draws.items()}
    if adapter is None:
        return flat, np.zeros((n, s))
    adapted, ldj = adapter.forward(
        flat, strict=False, log_det_jac=True, check_support=check_support
    )
    if IV not in ldj:
        return adapted, np.zeros((n, s))
    return adapted, np.asarray(ldj[IV], np.float64).reshape(n, s, -1).sum(axis=2)


def log_q_in_user_space(adapter, z: np.ndarray, lp: np.ndarray, draws: Mapping[str, Any]):
    """log q of the user-space ``draws`` from the network-space ``z`` and its log density
    ``lp`` ``(n, s)``: plus the adapter's log|det J|, and NaN where the inverse map
    saturated (the draw is not where the network put it, so no density describes it)."""
    # without the support checks: a draw rounded onto a bound gives inf/NaN here
    # instead of an error for the whole batch
    with np.errstate(divide="ignore", invalid="ignore"):
        adapted, ldj = adapt_draws(adapter, draws, *lp.shape, check_support=False)
    log_q = lp + ldj
    if IV in adapted:
        # the round trip through the adapter returns a draw to the network's value unless
        # the inverse saturated (float32 logistic at 1 past ~17, exp at inf past ~89)
        back = np.reshape(np.asarray(adapted[IV], np.float64), z.shape)
        moved = np.any(~np.isclose(back, z, rtol=0.05, atol=0.5), axis=-1)
        log_q = np.where(moved, np.nan, log_q)
    return log_q
