"""Prior and likelihood power-scaling sensitivity from one trained network.

A network trained on a :class:`~amortized.simulators.power_scaled.PowerScaledModel` gives
the posterior under ``p(theta)^gamma p(y | theta)`` for any ``gamma`` in its training range:
``prior_power_draws`` returns the posteriors of every dataset on a grid of ``gamma`` in one
call, and ``power_scaling_analysis`` measures for each dataset and parameter how much the
posterior moves per unit of ``log gamma`` (:mod:`amortized.diagnostics.power_sensitivity`):

- the prior side from the network's posteriors at ``gamma = exp(±step)``, drawn with the
  same seed so that both sets share their base noise (the difference is then the network's
  response to ``gamma``, not Monte Carlo noise);
- the likelihood side, for models with a likelihood, by reweighting the ``gamma = 1`` draws
  with ``p(y | theta)^(±step)`` (Pareto-smoothed; a k-hat above the PSIS threshold leaves
  that dataset's likelihood measures NaN).

Each parameter is rated (:func:`amortized.diagnostics.ratings.rate_power_sensitivity`):
"prior-data conflict", "prior-dominated", "likelihood-dominated" or "insensitive" (prior only,
without a likelihood: "prior-sensitive" or "insensitive").

>>> # ps = bf.sensitivity.power_scaling(model, gamma=(0.5, 2.0))
>>> # workflow = bf.BasicWorkflow(simulator=ps.simulator, adapter=ps.default_adapter(), ...)
>>> # workflow.fit_online(...)
>>> # result = bf.sensitivity.power_scaling_analysis(workflow, ps, {"y": y}, seed=1)
>>> # result.table()
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._random import stream_seeds
from ..approximators.condition_checks import OutOfDistributionWarning
from ..diagnostics._arrays import as_draws
from ..diagnostics.power_sensitivity import MEASURES, power_derivatives, summaries
from ..diagnostics.psis import pareto_k_threshold, psis
from ..diagnostics.ratings import rate_power_sensitivity
from ..simulators import DensityModel
from ..simulators.power_scaled import CONTEXT, PowerScaledModel

#: the default half-width of the finite differences in log gamma
DEFAULT_STEP = float(np.log(1.1))


def _num_datasets(data: Mapping[str, Any]) -> int:
    sizes = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in data.items()}
    if not sizes or None in sizes.values() or len(set(sizes.values())) != 1:
        raise ValueError(
            f"the data must hold arrays with the datasets on their first axis, all alike; "
            f"got leading sizes {sizes}"
        )
    return next(iter(sizes.values()))


def check_context(estimator: Any, signature: Mapping[str, Any], where: str) -> None:
    """Raise when ``estimator`` (a workflow) was trained with other context variables than
    ``signature`` describes (another gamma range, other universes): its conditions would
    then mean something else. Estimators that do not record a context are not checked."""
    trained = getattr(estimator, "context", None)
    if trained is not None and trained != signature:
        raise ValueError(
            f"{where}: the network was trained with context {trained}, but this analysis "
            f"describes {signature}; build the analysis from the same power_scaling(...) or "
            f"Multiverse(...) as the training simulations"
        )


def _check_gamma(scaled: PowerScaledModel, gamma: Sequence[float], where: str) -> np.ndarray:
    g = np.atleast_1d(np.asarray(gamma, np.float64))
    if g.ndim != 1 or not np.all(g > 0) or not np.all(np.isfinite(g)):
        raise ValueError(f"{where}: gamma must be positive numbers, got {gamma!r}")
    lo, hi = scaled.gamma
    outside = g[(g < lo * (1 - 1e-6)) | (g > hi * (1 + 1e-6))]
    if outside.size:
        warnings.warn(
            f"{where}: {CONTEXT} (gamma) {outside.tolist()} lies outside the training range "
            f"[{lo}, {hi}]; the network never saw such a prior and its posterior there is "
            f"an extrapolation",
            OutOfDistributionWarning,
            stacklevel=3,
        )
    return g


def _draws_at(estimator, data, gamma: float, num_samples: int, seed, n: int) -> dict:
    conditions = {**data, CONTEXT: np.full((n, 1), gamma)}
    return estimator.sample(
        num_samples=num_samples, conditions=conditions, seed=seed, progress=False
    )


def prior_power_draws(
    estimator: Any,
    scaled: PowerScaledModel,
    data: Mapping[str, Any],
    gamma: Sequence[float],
    *,
    num_samples: int = 1000,
    seed: int | None = None,
) -> dict[str, np.ndarray]:
    """Posterior draws ``{site: (num_datasets, len(gamma), num_samples, *shape)}`` of every
    dataset in ``data`` under the prior powered by each ``gamma`` (a trained workflow or
    estimator of ``scaled``'s simulations). All ``gamma`` share the seed, so the draws of
    one dataset at two powers share their base noise. A ``gamma`` outside the training
    range warns (:class:`~amortized.approximators.condition_checks.
    OutOfDistributionWarning`)."""
    if CONTEXT in data:
        raise KeyError(
            f"prior_power_draws: data hold {CONTEXT!r}; the powers are set by gamma=, not by "
            f"the data"
        )
    check_context(estimator, scaled.signature, "prior_power_draws")
    g = _check_gamma(scaled, gamma, "prior_power_draws")
    n = _num_datasets(data)
    per = [_draws_at(estimator, data, float(x), num_samples, seed, n) for x in g]
    return {k: np.stack([d[k] for d in per], axis=1) for k in per[0]}


@dataclass(frozen=True)
class SensitivityResult:
    """What :func:`power_scaling_analysis` returns.

    ``gamma (G,)`` and ``draws {site: (num_datasets, G, num_samples, *shape)}``: the
    posteriors at each power of the prior; ``parameters``: one name per column
    (``"theta[0]"``); ``prior`` and ``likelihood``: measure -> ``(num_datasets, dim)`` (see
    :mod:`amortized.diagnostics.power_sensitivity`; ``likelihood`` is None for a model
    without a likelihood); ``likelihood_khat (num_datasets,)``: the largest k-hat of the
    two reweightings; ``rating (num_datasets, dim)``; ``step``: the half-width in
    ``log gamma``."""

    gamma: np.ndarray
    draws: dict[str, np.ndarray]
    parameters: tuple[str, ...]
    prior: dict[str, np.ndarray]
    likelihood: dict[str, np.ndarray] | None
    likelihood_khat: np.ndarray | None
    rating: np.ndarray
    step: float

    def table(self):
        """A pandas DataFrame, one row per dataset and parameter: the prior's and the
        likelihood's measures (``prior_mean``, ..., ``likelihood_sensitivity``) and the
        rating."""
        import pandas as pd

        n, d = self.rating.shape
        rows = {
            "dataset": np.repeat(np.arange(n), d),
            "parameter": np.tile(np.asarray(self.parameters, dtype=object), n),
        }
        for side, values in (("prior", self.prior), ("likelihood", self.likelihood)):
            if values is None:
                continue
            for m in (*MEASURES, "sensitivity"):
                rows[f"{side}_{m}"] = values[m].reshape(-1)
        if self.likelihood_khat is not None:
            rows["likelihood_khat"] = np.repeat(self.likelihood_khat, d)
        rows["rating"] = self.rating.reshape(-1)
        return pd.DataFrame(rows)

    def write_report(
        self,
        path: Any,
        configuration: Mapping[str, Any] | None = None,
        history: Mapping[str, list] | None = None,
        max_datasets: int = 5,
    ):
        """Write the report folder (:mod:`amortized.diagnostics.sensitivity_report`):
        ``power_scaling.png`` (the first ``max_datasets`` datasets), ``sensitivity.png``,
        ``report.md`` / ``.html`` / ``.json``, ``metrics.csv`` and ``sensitivity.csv``
        (:meth:`table`). ``history``: the training history, checked as in the posterior
        report. Returns the folder."""
        from ..diagnostics.plots.power_scaling import (
            power_scaling_intervals,
            power_sensitivity_map,
        )
        from ..diagnostics.report import write_report
        from ..diagnostics.sensitivity_report import sensitivity_report, sensitivity_table

        num_samples = next(iter(self.draws.values())).shape[2]
        flat = np.concatenate([v.reshape(*v.shape[:3], -1) for v in self.draws.values()], axis=-1)
        table = sensitivity_table(
            self.parameters, self.prior, self.likelihood, self.likelihood_khat, num_samples
        )
        config = {
            "gamma grid": ", ".join(f"{g:.3g}" for g in self.gamma),
            "step (log gamma)": round(self.step, 4),
            "likelihood side": "reweighting" if self.likelihood is not None else "none",
            **(configuration or {}),
        }
        report = sensitivity_report(table, self.rating, config, history)
        likelihood = None if self.likelihood is None else self.likelihood["sensitivity"]
        figures = {
            "power_scaling": power_scaling_intervals(
                self.gamma, flat, self.parameters, max_datasets
            ),
            "sensitivity": power_sensitivity_map(
                self.prior["sensitivity"], likelihood, self.parameters
            ),
        }
        folder = write_report(path, report, figures, table, history)
        self.table().to_csv(folder / "sensitivity.csv", index=False)
        return folder


def _likelihood_side(model: DensityModel, data, base: dict, flat: np.ndarray, step: float):
    """The likelihood's measures from the ``gamma = 1`` draws reweighted by
    ``p(y | theta)^(±step)``, and each dataset's larger k-hat."""
    loglik = np.asarray(model.log_likelihood(base, data), np.float64)  # (N, S)
    sides, khat = [], np.zeros(loglik.shape[0])
    for sign in (-1.0, 1.0):
        res = psis(sign * step * loglik)
        khat = np.maximum(khat, res.khat)
        sides.append(summaries(flat, res.log_weights))
    base_sd = summaries(flat).sd
    out = power_derivatives(sides[0], sides[1], base_sd, step)
    bad = khat > pareto_k_threshold(loglik.shape[1])
    for v in out.values():
        v[bad] = np.nan
    return out, khat


def power_scaling_analysis(
    estimator: Any,
    scaled: PowerScaledModel,
    data: Mapping[str, Any],
    *,
    gamma: Sequence[float] | None = None,
    num_samples: int = 2000,
    step: float = DEFAULT_STEP,
    seed: int | None = None,
) -> SensitivityResult:
    """Prior (and, with a likelihood, likelihood) power-scaling sensitivity of every
    dataset's posterior (see the module docstring).

    Parameters
    ----------
    estimator : BasicWorkflow or estimator
        Trained on ``scaled.simulator``'s simulations with ``prior_power`` as a condition.
    scaled : PowerScaledModel
    data : dict
        The observed data ``{name: (num_datasets, ...)}`` as the network takes them.
    gamma : sequence of float, optional
        Powers at which to return the posteriors (default: 9 points evenly spaced in
        ``log gamma`` over the training range, and 1).
    num_samples : int, default 2000
        Draws per dataset and power; the finite differences use these too.
    step : float, default log(1.1)
        Half-width of the central differences in ``log gamma``: small enough to measure
        the derivative at ``gamma = 1``, large enough for the network's response to exceed
        its float32 noise.
    seed : int, optional
    """
    if not (isinstance(step, float | int) and 0 < step <= 0.5):
        raise ValueError(f"power_scaling_analysis: step must lie in (0, 0.5], got {step!r}")
    lo, hi = scaled.gamma
    if not (lo <= np.exp(-step) and np.exp(step) <= hi):
        raise ValueError(
            f"power_scaling_analysis: gamma = exp(±{step}) must lie in the training range "
            f"[{lo}, {hi}]"
        )
    grid = np.unique(np.round(np.r_[np.geomspace(lo, hi, 9), 1.0], 12)) if gamma is None else gamma
    if seed is None:  # a fresh run: one seed from the OS, split below like any other
        seed = int(np.random.SeedSequence().generate_state(1)[0] & 0x7FFFFFFF)
    seeds = stream_seeds(seed, ("grid", "derivative"))
    draws = prior_power_draws(
        estimator, scaled, data, grid, num_samples=num_samples, seed=seeds["grid"]
    )
    n = _num_datasets(data)
    at = {
        g: _draws_at(estimator, data, g, num_samples, seeds["derivative"], n)
        for g in (float(np.exp(-step)), 1.0, float(np.exp(step)))
    }
    flat = {g: as_draws("power_scaling_analysis", d, require_targets=False) for g, d in at.items()}
    names = flat[1.0].names
    base = summaries(flat[1.0].estimates)
    prior = power_derivatives(
        summaries(flat[float(np.exp(-step))].estimates),
        summaries(flat[float(np.exp(step))].estimates),
        base.sd,
        step,
    )
    likelihood = khat = None
    if isinstance(scaled.model, DensityModel):
        observed = {k: np.asarray(data[k]) for k in scaled.model.observed}
        likelihood, khat = _likelihood_side(
            scaled.model, observed, at[1.0], flat[1.0].estimates, step
        )
    rating = rate_power_sensitivity(
        prior["sensitivity"], None if likelihood is None else likelihood["sensitivity"]
    )
    return SensitivityResult(
        gamma=np.asarray(grid, np.float64),
        draws=draws,
        parameters=tuple(names),
        prior=prior,
        likelihood=likelihood,
        likelihood_khat=khat,
        rating=rating,
        step=float(step),
    )
