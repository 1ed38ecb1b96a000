"""The report of a power-scaling sensitivity analysis: the posterior report's folder layout
and JSON schema (:mod:`amortized.diagnostics.report`) with the figures ``power_scaling``
(posteriors across prior powers) and ``sensitivity`` (prior against likelihood sensitivity),
metrics per parameter (the largest value over the datasets of each measure of
:mod:`amortized.diagnostics.power_sensitivity`) and per parameter the ratings of its
datasets (:func:`~amortized.diagnostics.ratings.rate_power_sensitivity`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from .power_sensitivity import MEASURES
from .ratings import POWER_SENSITIVITY_THRESHOLD, THRESHOLDS, inspect_history
from .report import analysis_report, counted_ratings

EXPLANATIONS = {
    "power_scaling": "For each parameter and dataset: the posterior median (line) and central "
    "50% and 90% intervals (bands) when the prior is raised to the power gamma (gamma < 1 "
    "flattens it, > 1 sharpens it), from one network trained over gamma. Flat bands: the "
    "conclusions do not depend on the prior's strength.",
    "sensitivity": "Each parameter of each dataset: how far its posterior moves per unit of "
    "log gamma when the prior (x) or the likelihood (y) is power-scaled near gamma = 1. "
    f"Beyond {POWER_SENSITIVITY_THRESHOLD} on both axes: prior-data conflict; on the prior's "
    "alone: the prior dominates a weak likelihood; on the likelihood's alone: the data "
    "dominate, as intended.",
}

DESCRIPTIONS = {
    "prior_sensitivity": "largest shift of mean, sd or quantiles per unit log gamma (prior)",
    "likelihood_sensitivity": "the same when the likelihood is power-scaled",
    **{f"prior_{m}": f"largest |d {m} / d log gamma| over datasets (prior)" for m in MEASURES},
    **{
        f"likelihood_{m}": f"largest |d {m} / d log gamma| over datasets (likelihood)"
        for m in MEASURES
    },
    "likelihood_khat": "largest Pareto k-hat of the likelihood reweighting",
}


def sensitivity_table(
    names: Sequence[str],
    prior: Mapping[str, np.ndarray],
    likelihood: Mapping[str, np.ndarray] | None,
    khat: np.ndarray | None,
    num_samples: int,
):
    """Rows: measures (the largest absolute value over datasets); columns: parameters."""
    import pandas as pd

    rows = {"prior_sensitivity": np.max(prior["sensitivity"], axis=0)}
    if likelihood is not None:
        rows["likelihood_sensitivity"] = np.nanmax(likelihood["sensitivity"], axis=0)
    for side, values in (("prior", prior), ("likelihood", likelihood)):
        if values is not None:
            rows |= {f"{side}_{m}": np.nanmax(np.abs(values[m]), axis=0) for m in MEASURES}
    if khat is not None:
        rows["likelihood_khat"] = np.full(len(names), np.max(khat))
    table = pd.DataFrame(rows, index=list(names)).T
    table.attrs.update(num_datasets=int(prior["sensitivity"].shape[0]), num_samples=num_samples)
    return table


def sensitivity_report(
    table,
    rating: np.ndarray,
    configuration: Mapping[str, Any],
    history: Mapping[str, list] | None = None,
    title: str = "Power-scaling sensitivity report",
) -> dict:
    """The report as a JSON-serializable dict; ``rating (num_datasets, dim)``."""
    names = list(table.columns)
    check = inspect_history(history) if history else None
    ratings = counted_ratings(rating, names, "sensitivity")
    steps = []
    for j, name in enumerate(names):
        worst = [r for r in ("prior-data conflict", "prior-dominated") if r in rating[:, j]]
        if worst:
            which = [int(i) for i in np.flatnonzero(np.isin(rating[:, j], worst))]
            steps.append(
                f"{name}: {' / '.join(worst)} in datasets {which[:10]}"
                f"{' ...' if len(which) > 10 else ''}: the posterior moves with the prior's "
                f"strength. Report the prior's influence (the power_scaling figure), check "
                f"whether the prior says what was meant, and for a conflict whether the data "
                f"or the model are at fault."
            )
    if check is not None and check.messages:
        steps.extend(check.messages)
    assessments = {
        "power_scaling": "see the bands' slopes; the measures are in the metrics table",
        "sensitivity": "; ".join(f"{n}: {r['summary']}" for n, r in ratings.items()),
    }
    return analysis_report(
        title,
        configuration,
        table,
        DESCRIPTIONS,
        ratings,
        history,
        check,
        steps or ["No parameter is sensitive to the prior's strength."],
        EXPLANATIONS,
        assessments,
        {**asdict(THRESHOLDS), "power_sensitivity": POWER_SENSITIVITY_THRESHOLD},
    )
