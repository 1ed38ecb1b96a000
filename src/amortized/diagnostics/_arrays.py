"""Turn the inputs of every metric and plot into ``(num_datasets, num_samples, dim)`` draws,
``(num_datasets, dim)`` targets and one name per column.

Estimates come as an array ``(num_datasets, num_samples, dim)`` or as the dict a workflow's
``sample`` returns, ``{name: (num_datasets, num_samples, *shape)}``; targets as an array
``(num_datasets, dim)`` or ``{name: (num_datasets, *shape)}``. A variable with shape ``(2,)``
becomes the columns ``"theta[0]"``, ``"theta[1]"``; one with a single element (shape ``()`` or
``(1,)``) keeps its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Draws:
    """Posterior draws ``estimates (num_datasets, num_samples, dim)``, true values
    ``targets (num_datasets, dim)`` (or None) and ``names`` (``dim`` strings)."""

    estimates: np.ndarray
    targets: np.ndarray | None
    names: tuple[str, ...]

    @property
    def num_datasets(self) -> int:
        return self.estimates.shape[0]


def _column_names(name: str, shape: tuple[int, ...]) -> list[str]:
    if int(np.prod(shape)) == 1:  # a scalar per dataset, often stored as (n, 1)
        return [name]
    return [f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)]


def _flatten_dict(where: str, what: str, d: Mapping[str, Any], lead: int, keys: Sequence[str]):
    cols, names = [], []
    for k in keys:
        if k not in d:
            raise KeyError(f"{where}: {what} has no key {k!r}; keys: {sorted(d)}")
        a = np.asarray(d[k], dtype=np.float64)
        if a.ndim < lead:
            raise ValueError(
                f"{where}: {what}[{k!r}] needs at least {lead} leading axes, got shape {a.shape}"
            )
        cols.append(a.reshape(*a.shape[:lead], -1))
        names += _column_names(k, a.shape[lead:])
    return np.concatenate(cols, axis=-1), names


def as_draws(
    where: str,
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Callable] | None = None,
    require_targets: bool = True,
) -> Draws:
    """Validate and flatten; ``test_quantities`` (``{name: f(params_dict) -> (m,)}``, dict
    inputs only) are appended as extra columns, computed on draws and targets alike."""
    if isinstance(estimates, Mapping):
        keys = list(estimates)
        est, names = _flatten_dict(where, "estimates", estimates, 2, keys)
        tgt = None
        if targets is not None:
            if not isinstance(targets, Mapping):
                raise TypeError(
                    f"{where}: estimates is a dict, so targets must be a dict with the same "
                    f"keys {keys}, got {type(targets).__name__}"
                )
            tgt, _ = _flatten_dict(where, "targets", targets, 1, keys)
        if test_quantities:
            est, tgt, names = _add_test_quantities(
                where, estimates, targets, test_quantities, est, tgt, names
            )
    else:
        if test_quantities:
            raise TypeError(f"{where}: test_quantities need estimates and targets as dicts")
        est = np.asarray(estimates, dtype=np.float64)
        if est.ndim == 2:
            est = est[..., None]
        if est.ndim != 3:
            raise ValueError(
                f"{where}: estimates must have shape (num_datasets, num_samples, dim), got "
                f"{est.shape}"
            )
        tgt = None
        if targets is not None:
            tgt = np.asarray(targets, dtype=np.float64)
            if tgt.ndim == 1 and est.shape[2] == 1:
                tgt = tgt[:, None]
        names = [f"v{i}" for i in range(est.shape[2])]
    if variable_names is not None:
        variable_names = [variable_names] if isinstance(variable_names, str) else variable_names
        if len(variable_names) != est.shape[2]:
            raise ValueError(
                f"{where}: {len(variable_names)} variable_names for {est.shape[2]} variables"
            )
        names = list(variable_names)
    if tgt is None and require_targets:
        raise ValueError(f"{where}: targets (the true parameter values) are required")
    if tgt is not None and tgt.shape != (est.shape[0], est.shape[2]):
        raise ValueError(
            f"{where}: targets must have shape (num_datasets, dim) = "
            f"{(est.shape[0], est.shape[2])} to match estimates {est.shape}, got {tgt.shape}"
        )
    least = 2 if require_targets else 1  # metrics compare datasets; plots may show one
    if est.shape[0] < least or est.shape[1] < 2:
        raise ValueError(
            f"{where}: need at least {least} dataset(s) and 2 draws per dataset, got "
            f"estimates of shape {est.shape}"
        )
    for what, a in (("estimates", est), ("targets", tgt)):
        if a is not None and not np.all(np.isfinite(a)):
            raise ValueError(
                f"{where}: {what} hold {int(np.sum(~np.isfinite(a)))} non-finite values"
            )
    return Draws(est, tgt, tuple(names))


def _add_test_quantities(where, estimates, targets, test_quantities, est, tgt, names):
    n, s = est.shape[:2]
    flat = {k: np.asarray(v).reshape(n * s, *np.shape(v)[2:]) for k, v in estimates.items()}
    extra_e, extra_t = [], []
    for name, fn in test_quantities.items():
        q = np.asarray(fn(flat), dtype=np.float64)
        if q.shape != (n * s,):
            raise ValueError(
                f"{where}: test quantity {name!r} must map the draws to shape ({n * s},) "
                f"(one value per draw), got {q.shape}"
            )
        extra_e.append(q.reshape(n, s, 1))
        if targets is not None:
            qt = np.asarray(fn({k: np.asarray(v) for k, v in targets.items()}), dtype=np.float64)
            if qt.shape != (n,):
                raise ValueError(
                    f"{where}: test quantity {name!r} must map the targets to shape ({n},), "
                    f"got {qt.shape}"
                )
            extra_t.append(qt[:, None])
        names = [*names, name]
    est = np.concatenate([est, *extra_e], axis=-1)
    if tgt is not None:
        tgt = np.concatenate([tgt, *extra_t], axis=-1)
    return est, tgt, names


@dataclass(frozen=True)
class Metric:
    """One metric per variable: ``values (dim,)`` under ``metric_name`` (canonical,
    snake_case), with ``variable_names``; ``details`` holds per-dataset or per-level arrays."""

    metric_name: str
    values: np.ndarray
    variable_names: tuple[str, ...]
    details: dict | None = None

    def as_dict(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.variable_names, self.values, strict=True)}

    def __getitem__(self, key: str):
        """BayesFlow's result dict: ``metric["values"]``, ``["metric_name"]``,
        ``["variable_names"]`` (code written for BayesFlow reads metrics this way)."""
        fields = {
            "values": self.values,
            "metric_name": self.metric_name,
            "variable_names": list(self.variable_names),
        }
        if key not in fields:
            raise KeyError(f"Metric: no entry {key!r}; entries: {sorted(fields)}")
        return fields[key]


def select_keys(where: str, estimates, targets, variable_keys):
    """Keep ``variable_keys`` of dict inputs (in that order); arrays pass unchanged."""
    if variable_keys is None:
        return estimates, targets
    keys = [variable_keys] if isinstance(variable_keys, str) else list(variable_keys)
    if not isinstance(estimates, Mapping):
        raise TypeError(f"{where}: variable_keys select from dict estimates, got an array")
    unknown = [k for k in keys if k not in estimates]
    if unknown:
        raise KeyError(f"{where}: variable_keys {unknown} not in estimates {sorted(estimates)}")
    est = {k: estimates[k] for k in keys}
    tgt = targets if targets is None or not isinstance(targets, Mapping) else None
    if isinstance(targets, Mapping):
        missing = [k for k in keys if k not in targets]
        if missing:
            raise KeyError(f"{where}: targets lack {missing}; keys: {sorted(targets)}")
        tgt = {k: targets[k] for k in keys}
    return est, tgt


def bayesflow_draws(
    where, estimates, targets, variable_keys, variable_names, test_quantities, **kwargs
) -> Draws:
    """:func:`as_draws` after picking ``variable_keys`` (BayesFlow's argument order)."""
    est, tgt = select_keys(where, estimates, targets, variable_keys)
    return as_draws(where, est, tgt, variable_names, test_quantities, **kwargs)
