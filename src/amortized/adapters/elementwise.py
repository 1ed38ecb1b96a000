"""Elementwise invertible transforms with their log-det-Jacobians.

Direction: ``forward`` maps the user's (constrained) space to the network's (unconstrained)
space; ``inverse`` maps network samples back. ``ldj`` is ``log |dy/dx|`` of the forward map,
elementwise, so a density in the original space is
``log p_x(x) = log p_y(y) + sum(ldj)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

import numpy as np

from ._base import Transform, as_keys, missing, to_jsonable, xp_of

# Adapter.forward(check_support=False) turns the domain checks off for one call: values
# outside a transform's domain then give inf/NaN instead of an error
SUPPORT_CHECKS: ContextVar[bool] = ContextVar("adapter_support_checks", default=True)


class SupportBoundaryWarning(UserWarning):
    """Draws mapped back onto (or past) the boundary of an open support were moved inside."""


def _inside(key: str, x, lo, hi, where: str):
    """``x`` with every value at or beyond the open interval ``(lo, hi)`` (either may be
    None) or non-finite replaced by the nearest representable value inside it, and a
    :class:`SupportBoundaryWarning` with the count.

    In float32 the logistic function reaches 1 at about 17 and ``exp`` overflows at about
    89, so draws from a network conditioned far from its training data can land exactly on
    a bound or at infinity: values no density of the model allows. They are moved, not
    dropped (every draw keeps its place), and the count says how many there were."""
    if xp_of(x) is not np or not np.issubdtype(np.asarray(x).dtype, np.floating):
        return x  # traced values cannot be checked eagerly
    x = np.array(x)
    dtype = x.dtype.type
    finite_hi = np.finfo(x.dtype).max
    lo_ = -np.inf if lo is None else np.broadcast_to(lo, x.shape).astype(x.dtype)
    hi_ = np.inf if hi is None else np.broadcast_to(hi, x.shape).astype(x.dtype)
    low = (x <= lo_) | (x == -np.inf)
    high = (x >= hi_) | (x == np.inf)
    bad = int(np.sum(low | high))
    if not bad:
        return x
    inner_lo = np.nextafter(lo_, dtype(np.inf)) if lo is not None else dtype(-finite_hi)
    inner_hi = np.nextafter(hi_, dtype(-np.inf)) if hi is not None else dtype(finite_hi)
    x = np.where(low, inner_lo, np.where(high, inner_hi, x)).astype(x.dtype)
    warnings.warn(
        f"Adapter.{where}: {bad} of {x.size} value(s) of {key!r} came back on or beyond the "
        f"boundary of its support ({'-inf' if lo is None else 'lower bound'}, "
        f"{'inf' if hi is None else 'upper bound'}) in {x.dtype} (the network's output "
        f"saturated the inverse map, usually for conditions far from the training data); "
        f"they were moved to the nearest representable value inside. Treat these draws "
        f"with suspicion",
        SupportBoundaryWarning,
        stacklevel=5,
    )
    return x


def _aligned(p, x):
    """``p`` with leading length-1 axes up to ``x``'s rank (explicit, so strict rank
    promotion in JAX accepts it)."""
    if p is None or np.ndim(p) == 0:
        return p
    return np.reshape(p, (1,) * (np.ndim(x) - np.ndim(p)) + np.shape(p))


class ElementwiseTransform(Transform):
    """Applies ``_fwd`` / ``_inv`` / ``_ldj`` to each of ``keys``."""

    def __init__(self, keys: str | Sequence[str]):
        self.keys = as_keys(keys, self.name)

    def _check(self, key: str, x: Any) -> None:
        """Raise if ``x`` lies outside the transform's domain."""

    def _interior(self, key: str, x: Any) -> Any:
        """``x`` (an inverse's output) moved strictly inside the transform's open domain,
        with a warning where it was not (see :func:`_inside`)."""
        return x

    def forward(self, data, ldj, strict):
        if missing(self.name, data, self.keys, strict):
            return data, ldj
        data = dict(data)
        ldj = None if ldj is None else dict(ldj)
        for k in self.keys:
            x = data[k]
            if SUPPORT_CHECKS.get():
                self._check(k, x)
            data[k] = self._fwd(x)
            if ldj is not None:
                j = self._ldj(x)
                prev = ldj.get(k)
                ldj[k] = j if prev is None else prev + j
        return data, ldj

    def inverse(self, data, strict):
        if missing(self.name, data, self.keys, strict):
            return data
        data = dict(data)
        for k in self.keys:
            # an overflow to inf is not an error here: _interior moves it inside and
            # warns by name, so NumPy's own RuntimeWarning would only repeat it unnamed
            with np.errstate(over="ignore", under="ignore"):
                y = self._inv(data[k])
            data[k] = self._interior(k, y)
        return data

    def params(self):
        return {"keys": self.keys}


def _bound_array(b, where):
    if b is None:
        return None
    b = np.asarray(b, dtype=np.float64)
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{where}: bounds must be finite (use None for no bound), got {b}")
    return b


DEFAULT_INTERVAL_METHOD = "sigmoid"


def _special(x):
    """``ndtr`` (the normal CDF) and ``ndtri`` (its inverse) for NumPy or JAX arrays."""
    if xp_of(x) is np:
        from scipy.special import ndtr, ndtri
    else:
        from jax.scipy.special import ndtr, ndtri
    return ndtr, ndtri


class Constrain(ElementwiseTransform):
    """Map a bounded variable to the real line.

    - both bounds, ``method="sigmoid"`` (``"default"``): with p = (x - l) / (u - l),
      y = logit(p), ldj = -log(p (1 - p) (u - l))
    - both bounds, ``method="probit"``: y = Phi^-1(p) (Phi the standard normal CDF),
      ldj = y^2 / 2 + log(2 pi) / 2 - log(u - l). A uniform prior on (l, u) becomes a
      standard normal in y (under the logit map a logistic, whose exponential tails a flow
      with a Gaussian base fits less well where the posterior reaches a bound).
    - lower only (``method="log"``, the default):  y = log(x - l),  ldj = -log(x - l)
    - upper only (``method="log"``, the default):  y = log(u - x),  ldj = -log(u - x)

    Bounds are scalars or arrays broadcasting against the variable's trailing axes.
    """

    name = "constrain"

    def __init__(self, keys, lower=None, upper=None, method: str = "default"):
        super().__init__(keys)
        self.lower = _bound_array(lower, "constrain(lower)")
        self.upper = _bound_array(upper, "constrain(upper)")
        if self.lower is None and self.upper is None:
            raise ValueError("constrain: give lower, upper or both")
        if self.lower is not None and self.upper is not None and np.any(self.upper <= self.lower):
            raise ValueError(
                f"constrain: upper must exceed lower, got lower={self.lower}, upper={self.upper}"
            )
        interval = self.lower is not None and self.upper is not None
        accepted = ("default", "sigmoid", "probit") if interval else ("default", "log")
        if method not in accepted:
            raise ValueError(
                f"constrain: method must be one of {accepted} for "
                f"{'an interval' if interval else 'a one-sided bound'}, got {method!r}"
            )
        # stored resolved, so that a saved adapter keeps its map if the default changes
        self.method = (
            method if method != "default" else DEFAULT_INTERVAL_METHOD if interval else "log"
        )

    @classmethod
    def from_params(cls, params):
        # configurations saved before ``method`` existed used the logit map
        if "method" not in params:
            interval = params.get("lower") is not None and params.get("upper") is not None
            params = {**params, "method": "sigmoid" if interval else "log"}
        return cls(**params)

    def _check(self, key, x):
        if xp_of(x) is not np:
            return  # traced values cannot be checked eagerly
        x = np.asarray(x)
        below = self.lower is not None and np.any(x <= self.lower)
        above = self.upper is not None and np.any(x >= self.upper)
        if below or above:
            lo = -np.inf if self.lower is None else self.lower
            hi = np.inf if self.upper is None else self.upper
            bad = np.sum((x <= lo) | (x >= hi))
            raise ValueError(
                f"Adapter.constrain: {int(bad)} value(s) of {key!r} lie outside the open "
                f"interval ({lo}, {hi}); min {x.min()}, max {x.max()}"
            )

    def _interior(self, key, x):
        return _inside(key, x, _aligned(self.lower, x), _aligned(self.upper, x), self.name)

    def _fwd(self, x):
        xp = xp_of(x)
        lo, hi = _aligned(self.lower, x), _aligned(self.upper, x)
        if lo is not None and hi is not None:
            p = (x - lo) / (hi - lo)
            if self.method == "probit":
                # the upper half from the distance to the upper bound, so that values
                # near it keep their precision (1 - p would round to 0 first)
                ndtri = _special(x)[1]
                q = (hi - x) / (hi - lo)
                return xp.where(p < 0.5, ndtri(xp.minimum(p, 0.5)), -ndtri(xp.minimum(q, 0.5)))
            return xp.log(p) - xp.log1p(-p)
        if lo is not None:
            return xp.log(x - lo)
        return xp.log(hi - x)

    def _inv(self, y):
        xp = xp_of(y)
        lo, hi = _aligned(self.lower, y), _aligned(self.upper, y)
        if lo is not None and hi is not None:
            if self.method == "probit":
                ndtr = _special(y)[0]
                width = hi - lo
                x = xp.where(y < 0, lo + width * ndtr(y), hi - width * ndtr(-y))
                return x.astype(y.dtype)
            p = 0.5 * (1.0 + xp.tanh(0.5 * y))  # the logistic function, without overflow
            return (lo + (hi - lo) * p).astype(y.dtype)
        if lo is not None:
            return (lo + xp.exp(y)).astype(y.dtype)
        return (hi - xp.exp(y)).astype(y.dtype)

    def _ldj(self, x):
        xp = xp_of(x)
        lo, hi = _aligned(self.lower, x), _aligned(self.upper, x)
        if lo is not None and hi is not None:
            if self.method == "probit":
                y = self._fwd(x)
                return 0.5 * y * y + 0.5 * np.log(2 * np.pi) - np.log(hi - lo)
            p = (x - lo) / (hi - lo)
            return -(xp.log(p) + xp.log1p(-p) + np.log(hi - lo))
        if lo is not None:
            return -xp.log(x - lo)
        return -xp.log(hi - x)

    def params(self):
        return {
            "keys": self.keys,
            "lower": to_jsonable(self.lower),
            "upper": to_jsonable(self.upper),
            "method": self.method,
        }


class Log(ElementwiseTransform):
    """y = log(x) (or log(1 + x) with ``p1=True``); ldj = -log(x) (or -log(1 + x))."""

    name = "log"

    def __init__(self, keys, p1: bool = False):
        super().__init__(keys)
        self.p1 = bool(p1)

    def _check(self, key, x):
        if xp_of(x) is np and np.any(np.asarray(x) <= (-1.0 if self.p1 else 0.0)):
            raise ValueError(
                f"Adapter.log: {key!r} must be {'> -1' if self.p1 else 'positive'}; "
                f"min is {np.min(x)}"
            )

    def _fwd(self, x):
        xp = xp_of(x)
        return xp.log1p(x) if self.p1 else xp.log(x)

    def _inv(self, y):
        xp = xp_of(y)
        return xp.expm1(y) if self.p1 else xp.exp(y)

    def _interior(self, key, x):
        return _inside(key, x, -1.0 if self.p1 else 0.0, None, self.name)

    def _ldj(self, x):
        return -self._fwd(x)

    def params(self):
        return {"keys": self.keys, "p1": self.p1}


class Sqrt(ElementwiseTransform):
    """y = sqrt(x); ldj = -log(2 sqrt(x))."""

    name = "sqrt"

    def _check(self, key, x):
        if xp_of(x) is np and np.any(np.asarray(x) < 0):
            raise ValueError(f"Adapter.sqrt: {key!r} must be non-negative; min is {np.min(x)}")

    def _fwd(self, x):
        return xp_of(x).sqrt(x)

    def _inv(self, y):
        return y * y

    def _ldj(self, x):
        xp = xp_of(x)
        return -xp.log(2.0 * xp.sqrt(x))


class Standardize(ElementwiseTransform):
    """y = (x - mean) / std with fixed, user-given statistics; ldj = -log(std).

    Statistics learned from training data belong to the approximator, which computes and
    saves them; this transform is for statistics the user knows.
    """

    name = "standardize"

    def __init__(self, keys, mean, std):
        super().__init__(keys)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if np.any(self.std <= 0):
            raise ValueError(f"Adapter.standardize: std must be positive, got {self.std}")

    def _fwd(self, x):
        return ((x - _aligned(self.mean, x)) / _aligned(self.std, x)).astype(x.dtype)

    def _inv(self, y):
        return (y * _aligned(self.std, y) + _aligned(self.mean, y)).astype(y.dtype)

    def _ldj(self, x):
        return xp_of(x).zeros_like(x) - np.log(_aligned(self.std, x))

    def params(self):
        return {"keys": self.keys, "mean": to_jsonable(self.mean), "std": to_jsonable(self.std)}
