"""Disagreement between the members of an ensemble, per dataset: where approximators
trained on the same simulations with different seeds give different posteriors, at least one
of them is wrong there, whatever each one's own spread says.

For member draws ``(num_members, num_datasets, S, dim)``, per dataset and parameter, the
spread of the members' posterior means against the members' posterior spread,

    disagreement = sd_k(mean_k) / sqrt(mean_k(sd_k^2)),

(the multiverse's ``spread_ratio`` with members as universes,
:func:`amortized.diagnostics.multiverse.multiverse_agreement`), and ``log_sd_spread``, the sd
over members of their log posterior sd (members that agree on the centre but not on the
width). A dataset is flagged when either reaches
:data:`~amortized.diagnostics.ratings.ENSEMBLE_DISAGREEMENT_THRESHOLD` for some parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .multiverse import multiverse_agreement, universe_summaries
from .ratings import ENSEMBLE_DISAGREEMENT_THRESHOLD


@dataclass(frozen=True)
class Disagreement:
    """``disagreement`` and ``log_sd_spread`` ``(num_datasets, dim)``; ``flagged
    (num_datasets,)``: datasets where a parameter reaches the threshold."""

    disagreement: np.ndarray
    log_sd_spread: np.ndarray
    flagged: np.ndarray
    threshold: float


def ensemble_disagreement(
    member_draws: np.ndarray, threshold: float = ENSEMBLE_DISAGREEMENT_THRESHOLD
) -> Disagreement:
    """See the module docstring.

    >>> rng = np.random.default_rng(0)
    >>> same = rng.normal(size=(3, 2, 4000, 1))           # 3 members, 2 datasets, agree
    >>> d = ensemble_disagreement(same)
    >>> bool(d.flagged.any()), float(d.disagreement.max()) < 0.05
    (False, True)
    >>> shifted = same + np.array([0.0, 0.0, 1.0])[:, None, None, None]  # one member off
    >>> ensemble_disagreement(shifted).flagged.tolist()
    [True, True]
    """
    x = np.asarray(member_draws, np.float64)
    if x.ndim != 4 or x.shape[0] < 2:
        raise ValueError(
            f"ensemble_disagreement: member_draws must be (num_members >= 2, num_datasets, "
            f"S, dim), got {x.shape}"
        )
    s = universe_summaries(np.swapaxes(x, 0, 1))  # members as universes
    ratio = multiverse_agreement(s)["spread_ratio"]
    log_sd = np.log(np.maximum(s["sd"], np.finfo(np.float64).tiny))
    spread = log_sd.std(axis=1, ddof=1)
    flagged = np.any((ratio >= threshold) | (spread >= threshold), axis=1)
    return Disagreement(ratio, spread, flagged, float(threshold))


#: the rows an ensemble adds to the default diagnostics table
ENSEMBLE_METRICS = {
    "ensemble_disagreement": "median over datasets of the sd of the members' posterior means "
    "in posterior sd (0 best)",
    "ensemble_flagged": "share of datasets where the members disagree on this parameter "
    "(mean or log sd spread at the threshold or above; 0 best)",
}


def with_disagreement(table, d: Disagreement):
    """The default diagnostics ``table`` (metrics x variables) with the rows of
    :data:`ENSEMBLE_METRICS` for its first ``dim`` columns (the parameters ``d`` was
    computed on; test quantities after them get NaN), and the flagged datasets' indices in
    ``attrs["ensemble_flagged_datasets"]``. Returns a new table."""
    dim = d.disagreement.shape[1]
    if dim > table.shape[1]:
        raise ValueError(
            f"with_disagreement: {dim} disagreement columns for a table of {table.shape[1]}"
        )
    out = table.copy()
    per_var = (d.disagreement >= d.threshold) | (d.log_sd_spread >= d.threshold)
    pad = np.full(table.shape[1] - dim, np.nan)
    out.loc["ensemble_disagreement"] = np.concatenate([np.median(d.disagreement, axis=0), pad])
    out.loc["ensemble_flagged"] = np.concatenate([per_var.mean(axis=0), pad])
    out.attrs = dict(table.attrs)
    out.attrs["ensemble_flagged_datasets"] = np.flatnonzero(d.flagged).tolist()
    out.attrs["ensemble_threshold"] = d.threshold
    return out
