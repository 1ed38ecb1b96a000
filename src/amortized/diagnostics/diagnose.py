"""All default diagnostics of one set of held-out draws, as data, then as figures.

``diagnose`` computes the table, the ratings, the history check and the next steps;
``default_figures`` renders the five report figures. Both take arrays (or the dicts a
workflow returns), never a workflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._arrays import as_draws
from .default import default_diagnostics
from .ratings import (
    THRESHOLDS,
    HistoryCheck,
    Thresholds,
    VariableRating,
    inspect_history,
    next_steps,
    rate_diagnostics,
)


@dataclass(frozen=True)
class Diagnosis:
    """``table`` (pandas DataFrame, metrics x variables), per-variable ``ratings``, the
    ``history_check`` (None without a history) and the ordered ``next_steps``."""

    table: Any
    ratings: list[VariableRating]
    history_check: HistoryCheck | None
    next_steps: list[str]


def diagnose(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    history: Mapping[str, Sequence[float]] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Callable] | None = None,
    thresholds: Thresholds = THRESHOLDS,
) -> Diagnosis:
    """Table, ratings, history check and next steps for draws of held-out simulations.

    >>> rng = np.random.default_rng(0)
    >>> theta = rng.normal(size=(300, 1)); draws = rng.normal(size=(300, 500, 1))
    >>> diagnose(draws, theta).ratings[0].calibration    # prior = posterior: calibrated
    'excellent'
    """
    table = default_diagnostics(estimates, targets, variable_names, test_quantities)
    ratings = rate_diagnostics(table, thresholds)
    check = None if history is None else inspect_history(history, thresholds)
    return Diagnosis(table, ratings, check, next_steps(ratings, check))


def default_figures(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    history: Mapping[str, Sequence[float]] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Callable] | None = None,
) -> dict:
    """``{"losses", "recovery", "calibration_ecdf", "coverage", "z_score_contraction"}`` as
    matplotlib Figures (``"losses"`` only with a history)."""
    from . import plots

    d = as_draws("default_figures", estimates, targets, variable_names, test_quantities)
    kw = {"estimates": d.estimates, "targets": d.targets, "variable_names": list(d.names)}
    figs = {}
    if history is not None:
        figs["losses"] = plots.loss(history)
    figs["recovery"] = plots.recovery(**kw)
    figs["calibration_ecdf"] = plots.calibration_ecdf(**kw)
    figs["coverage"] = plots.coverage(**kw)
    figs["z_score_contraction"] = plots.z_score_contraction(**kw)
    return figs
