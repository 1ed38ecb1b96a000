"""The report of a multiverse analysis: the posterior report's folder layout and JSON
schema (:mod:`amortized.diagnostics.report`) with the figures ``multiverse`` (every
universe's interval for one dataset) and ``choice_effects``, metrics per parameter (the
across-universe measures of :mod:`amortized.diagnostics.multiverse`, the worst dataset's)
and per parameter the ratings of its datasets
(:func:`~amortized.diagnostics.ratings.rate_multiverse`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from .ratings import MULTIVERSE_SPREAD_THRESHOLD, THRESHOLDS, inspect_history
from .report import analysis_report, counted_ratings

EXPLANATIONS = {
    "multiverse": "For one dataset: the posterior mean (dot) and central interval (bar) of "
    "every parameter in every universe (every combination of the analytic choices), all from "
    "one network. Bars that line up: the conclusion does not depend on the choices.",
    "choice_effects": "For each choice: how far the posterior mean moves between its options "
    "(averaged over the other choices), in posterior standard deviations; bars: mean over "
    "datasets, whiskers: the smallest and largest.",
}

DESCRIPTIONS = {
    "sign_agreement": "smallest over datasets: share of universes whose mean has the "
    "majority's sign",
    "excludes_zero": "share of universes whose interval excludes zero (largest over datasets)",
    "between_sd": "largest over datasets: sd of the universes' posterior means",
    "within_sd": "root mean posterior variance (at the dataset of the largest spread ratio)",
    "spread_ratio": "largest over datasets: between_sd / within_sd",
}


def multiverse_table(
    names: Sequence[str],
    agreement: Mapping[str, np.ndarray],
    effects: Mapping[str, np.ndarray],
    num_samples: int,
):
    """Rows: the across-universe measures at their worst over datasets, and each choice's
    largest effect (``effect_<choice>``); columns: parameters."""
    import pandas as pd

    worst = np.argmax(agreement["spread_ratio"], axis=0)  # (dim,)
    cols = np.arange(len(names))
    rows = {
        "sign_agreement": np.min(agreement["sign_agreement"], axis=0),
        "excludes_zero": np.max(agreement["excludes_zero"], axis=0),
        "between_sd": np.max(agreement["between_sd"], axis=0),
        "within_sd": agreement["within_sd"][worst, cols],
        "spread_ratio": np.max(agreement["spread_ratio"], axis=0),
    }
    rows |= {f"effect_{c}": np.max(v, axis=0) for c, v in effects.items()}
    table = pd.DataFrame(rows, index=list(names)).T
    n = int(agreement["spread_ratio"].shape[0])
    table.attrs.update(num_datasets=n, num_samples=num_samples)
    return table


def multiverse_report(
    table,
    rating: np.ndarray,
    configuration: Mapping[str, Any],
    history: Mapping[str, list] | None = None,
    dataset: int = 0,
    title: str = "Multiverse report",
) -> dict:
    """The report as a JSON-serializable dict; ``rating (num_datasets, dim)``."""
    names = list(table.columns)
    check = inspect_history(history) if history else None
    ratings = counted_ratings(rating, names, "multiverse")
    steps = []
    for j, name in enumerate(names):
        for label, advice in (
            (
                "conclusion differs",
                "whether an interval excludes zero depends on the analytic choices: report "
                "the conclusion per universe, or justify one choice before looking",
            ),
            (
                "choice-dependent",
                "the choices move the posterior by a sizeable share of its spread: see which "
                "choice in the choice_effects figure",
            ),
        ):
            which = [int(i) for i in np.flatnonzero(rating[:, j] == label)]
            if which:
                steps.append(
                    f"{name}: {label} in datasets {which[:10]}"
                    f"{' ...' if len(which) > 10 else ''}: {advice}."
                )
    if check is not None and check.messages:
        steps.extend(check.messages)
    assessments = {
        "multiverse": f"dataset {dataset}; "
        + "; ".join(f"{n}: {r['summary']}" for n, r in ratings.items()),
        "choice_effects": "; ".join(
            f"{c[len('effect_') :]}: up to {table.loc[c].max():.2f} sd"
            for c in table.index
            if c.startswith("effect_")
        ),
    }
    descriptions = {
        m: DESCRIPTIONS.get(
            m, "largest over datasets: spread of the mean over this choice's options, in sd"
        )
        for m in table.index
    }
    return analysis_report(
        title,
        configuration,
        table,
        descriptions,
        ratings,
        history,
        check,
        steps or ["The conclusions hold in every universe."],
        EXPLANATIONS,
        assessments,
        {**asdict(THRESHOLDS), "multiverse_spread": MULTIVERSE_SPREAD_THRESHOLD},
    )
