"""Prior and posterior predictive checks: can the model produce data like the observed?

A test statistic ``T`` maps a dataset to a number (a mean, a spread, an extreme value). For
an observed dataset ``y``:

- *prior predictive*: ``T`` of simulations from the prior predictive against ``T(y)``;
  ``p = P(T(y_rep) >= T(y))`` says whether the prior and the observation model together
  can produce such data at all (before any fitting);
- *posterior predictive*: ``T`` of data simulated at the dataset's own posterior draws,
  ``y_rep ~ p(y | theta_s)``, against ``T(y)``; ``p = P(T(y_rep) >= T(y) | y)`` per dataset
  and statistic (Gelman, Meng and Stern 1996). A p-value near 0 or 1 says the fitted model
  does not reproduce that feature of the data (a variance under overdispersion, an
  extreme under outliers).

Ties count half (``P(T_rep > T) + P(T_rep = T) / 2``), so discrete statistics are not
pushed to one side. Posterior predictive p-values of statistics that the posterior adapts
to (the sample mean under a location model) concentrate near 0.5 even for a correct model;
those of statistics it does not fit (the spread when the scale is known) are uniform under
the model, and a dataset is flagged when a p-value falls in either ``alpha / 2`` tail.

Statistics are functions of a batch of datasets, ``{name: (m, ...)} -> (m,)``: vectorized,
so that the ``num_datasets x num_samples`` replicates cost one call.
:func:`default_statistics` gives mean, sd, min and max over the observation axis of every
set- or series-shaped variable ``(m, N, ...)`` (per feature), and each entry of a flat one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Statistic = Callable[[Mapping[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class PredictiveCheck:
    """``observed (num_datasets, k)``: each statistic of each observed dataset;
    ``replicated``: the statistics of the predictive simulations, ``(num_simulations, k)``
    (prior predictive, shared by all datasets) or ``(num_datasets, num_samples, k)``
    (posterior predictive); ``p_value (num_datasets, k)``; ``names`` the ``k`` statistics;
    ``kind`` "prior" or "posterior"; ``flagged (num_datasets, k)``: a p-value in either
    ``alpha / 2`` tail; ``flagged_datasets (num_datasets,)``: the same over all statistics
    at level ``alpha`` together."""

    observed: np.ndarray
    replicated: np.ndarray
    p_value: np.ndarray
    names: tuple[str, ...]
    kind: str
    alpha: float

    @property
    def flagged(self) -> np.ndarray:
        return (self.p_value <= self.alpha / 2) | (self.p_value >= 1 - self.alpha / 2)

    @property
    def flagged_datasets(self) -> np.ndarray:
        """``(num_datasets,)``: some statistic in a tail after Bonferroni's correction
        for the ``k`` statistics (each tail ``alpha / (2 k)``), so that a dataset of a
        correct model is flagged with probability at most ``alpha``."""
        a = self.alpha / (2 * max(len(self.names), 1))
        return np.any((self.p_value <= a) | (self.p_value >= 1 - a), axis=1)

    def table(self):
        """A pandas DataFrame: one row per dataset, the p-value of each statistic."""
        import pandas as pd

        return pd.DataFrame(self.p_value, columns=list(self.names))


def default_statistics(example: Mapping[str, Any]) -> dict[str, Statistic]:
    """Statistics for the variables of ``example`` (one batch of data ``{name: (m, ...)}``):
    for a set or series ``(m, N, ...)`` with ``N > 1``, the mean, sd, min and max over its
    rows (per feature: a statistic with several features is split into ``name[j] sd``,
    ...); for a flat variable ``(m, d)``, each entry ``name[j]``.

    >>> stats = default_statistics({"y": np.zeros((2, 10, 1))})
    >>> sorted(stats)
    ['y max', 'y mean', 'y min', 'y sd']
    >>> float(stats["y sd"]({"y": np.arange(20.0).reshape(2, 10, 1)})[1])
    2.8722813232690143
    """
    out: dict[str, Statistic] = {}
    for name, v in example.items():
        v = np.asarray(v)
        if not np.issubdtype(v.dtype, np.number) or v.ndim < 2:
            continue
        if v.ndim >= 3 and v.shape[1] > 1:
            features = int(np.prod(v.shape[2:]))
            for label, fn in (("mean", np.mean), ("sd", np.std), ("min", np.min),
                              ("max", np.max)):  # fmt: skip
                for j in range(features):
                    key = f"{name} {label}" if features == 1 else f"{name}[{j}] {label}"
                    out[key] = _row_statistic(name, fn, j)
        else:
            for j in range(int(np.prod(v.shape[1:]))):
                out[f"{name}[{j}]" if v[0].size > 1 else name] = _entry(name, j)
    if not out:
        raise ValueError(
            f"default_statistics: no numeric variable with a batch axis among {sorted(example)}; "
            f"pass statistics={{name: f(data) -> (num_datasets,)}}"
        )
    return out


def _row_statistic(name: str, fn, j: int) -> Statistic:
    def stat(data):
        v = np.asarray(data[name], np.float64)
        return fn(v.reshape(v.shape[0], v.shape[1], -1)[:, :, j], axis=1)

    return stat


def _entry(name: str, j: int) -> Statistic:
    def stat(data):
        v = np.asarray(data[name], np.float64)
        return v.reshape(v.shape[0], -1)[:, j]

    return stat


def evaluate_statistics(
    statistics: Mapping[str, Statistic], data: Mapping[str, Any], where: str
) -> np.ndarray:
    """``(m, k)``: each statistic of each of the ``m`` datasets in ``data``; a statistic
    that raises, or returns anything but ``m`` finite numbers, is named in the error."""
    m = len(np.asarray(next(iter(data.values()))))
    cols = []
    for name, fn in statistics.items():
        try:
            v = np.asarray(fn(data), np.float64)
        except Exception as err:
            raise ValueError(
                f"{where}: statistic {name!r} failed on a batch of {m} datasets "
                f"({type(err).__name__}: {err}); statistics take {{name: (num_datasets, ...)}}"
                f" and return (num_datasets,)"
            ) from err
        if v.shape != (m,):
            raise ValueError(
                f"{where}: statistic {name!r} must return one number per dataset, shape "
                f"({m},), got {v.shape}"
            )
        if not np.all(np.isfinite(v)):
            raise ValueError(
                f"{where}: statistic {name!r} is not finite for "
                f"{int(np.sum(~np.isfinite(v)))} of {m} datasets"
            )
        cols.append(v)
    return np.stack(cols, axis=1)


def _upper_tail(replicated: np.ndarray, observed: np.ndarray, axis: int) -> np.ndarray:
    """``P(T_rep > T) + P(T_rep = T) / 2`` over ``axis`` of ``replicated``."""
    return np.mean(replicated > observed, axis=axis) + 0.5 * np.mean(
        replicated == observed, axis=axis
    )


def prior_predictive_check(
    replicated: np.ndarray, observed: np.ndarray, names, alpha: float = 0.05
) -> PredictiveCheck:
    """p-values of observed statistics ``(num_datasets, k)`` against statistics of prior
    predictive simulations ``(num_simulations, k)``."""
    rep, obs = np.asarray(replicated, np.float64), np.asarray(observed, np.float64)
    if rep.ndim != 2 or obs.ndim != 2 or rep.shape[1] != obs.shape[1]:
        raise ValueError(
            f"prior_predictive_check: replicated (num_simulations, k) and observed "
            f"(num_datasets, k) needed, got {rep.shape} and {obs.shape}"
        )
    p = _upper_tail(rep[None], obs[:, None], axis=1)
    return PredictiveCheck(obs, rep, p, tuple(names), "prior", float(alpha))


def posterior_predictive_check(
    replicated: np.ndarray, observed: np.ndarray, names, alpha: float = 0.05
) -> PredictiveCheck:
    """p-values of observed statistics ``(num_datasets, k)`` against statistics of data
    simulated at each dataset's posterior draws ``(num_datasets, num_samples, k)``.

    >>> rng = np.random.default_rng(0)
    >>> rep = rng.normal(size=(2, 4000, 1))
    >>> posterior_predictive_check(rep, np.array([[0.0], [4.0]]), ["t"]).flagged[:, 0].tolist()
    [False, True]
    """
    rep, obs = np.asarray(replicated, np.float64), np.asarray(observed, np.float64)
    if (
        rep.ndim != 3
        or obs.ndim != 2
        or rep.shape[0] != obs.shape[0]
        or rep.shape[2] != obs.shape[1]
    ):
        raise ValueError(
            f"posterior_predictive_check: replicated (num_datasets, num_samples, k) and "
            f"observed (num_datasets, k) needed, got {rep.shape} and {obs.shape}"
        )
    p = _upper_tail(rep, obs[:, None], axis=1)
    return PredictiveCheck(obs, rep, p, tuple(names), "posterior", float(alpha))
