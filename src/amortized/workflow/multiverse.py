"""Multiverse analysis from one trained network: every universe's posterior for every
dataset, and how much the conclusions depend on the choices.

A network trained on a :class:`~amortized.simulators.multiverse.Multiverse`'s simulations
(the universe code as a condition) is asked once per universe;
:func:`multiverse_analysis` summarizes each universe's posterior and the agreement across
universes (:mod:`amortized.diagnostics.multiverse`) and rates each parameter of each
dataset (:func:`amortized.diagnostics.ratings.rate_multiverse`): "robust", "choice-dependent"
or "conclusion differs" (some universes' intervals exclude zero, others' do not).

>>> # mv = bf.sensitivity.Multiverse(model, {"prior": {...}, "noise": {...}})
>>> # workflow = bf.BasicWorkflow(simulator=mv.simulator, adapter=mv.default_adapter(), ...)
>>> # workflow.fit_offline(mv.simulator.sample(20000, seed=1))
>>> # result = bf.sensitivity.multiverse_analysis(workflow, mv, {"y": y}, seed=2)
>>> # result.table(); result.write_report("multiverse_report")
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..diagnostics._arrays import as_draws
from ..diagnostics.multiverse import choice_effects, multiverse_agreement, universe_summaries
from ..diagnostics.ratings import rate_multiverse
from ..simulators.multiverse import CONTEXT, Multiverse
from .sensitivity import _num_datasets, check_context


def multiverse_draws(
    estimator: Any,
    multiverse: Multiverse,
    data: Mapping[str, Any],
    universes: Any = None,
    *,
    num_samples: int = 1000,
    seed: int | None = None,
) -> dict[str, np.ndarray]:
    """Posterior draws ``{site: (num_datasets, num_universes, num_samples, *shape)}`` of
    every dataset in ``data`` in each universe (``universes``: see
    :meth:`Multiverse.select`; default all, in ``multiverse.universes`` order). All
    universes share the seed, so one dataset's draws in two universes share their base
    noise."""
    if CONTEXT in data:
        raise KeyError(
            f"multiverse_draws: data hold {CONTEXT!r}; the universes are set by universes=, "
            f"not by the data"
        )
    check_context(estimator, multiverse.signature, "multiverse_draws")
    picked = multiverse.select(universes)
    n = _num_datasets(data)
    per = []
    for i in picked:
        conditions = {**data, CONTEXT: np.tile(multiverse.encode(i), (n, 1))}
        per.append(
            estimator.sample(
                num_samples=num_samples, conditions=conditions, seed=seed, progress=False
            )
        )
    return {k: np.stack([d[k] for d in per], axis=1) for k in per[0]}


@dataclass(frozen=True)
class MultiverseResult:
    """What :func:`multiverse_analysis` returns.

    ``universes``: the universes' names (``"prior=wide, noise=normal"``) and ``options``
    their option tuples, in the order of the draws' axis 1; ``choices``: the choice names;
    ``draws {site: (num_datasets, num_universes, num_samples, *shape)}``; ``parameters``:
    one name per column; ``summaries``: ``mean``, ``sd``, ``lo``, ``hi`` ``(num_datasets,
    num_universes, dim)``; ``agreement``: the across-universe measures ``(num_datasets,
    dim)``; ``effects``: choice -> ``(num_datasets, dim)``; ``rating (num_datasets, dim)``;
    ``interval``."""

    universes: tuple[str, ...]
    options: tuple[tuple[str, ...], ...]
    choices: tuple[str, ...]
    draws: dict[str, np.ndarray]
    parameters: tuple[str, ...]
    summaries: dict[str, np.ndarray]
    agreement: dict[str, np.ndarray]
    effects: dict[str, np.ndarray]
    rating: np.ndarray
    interval: float

    def table(self):
        """A pandas DataFrame, one row per dataset and parameter: the agreement measures,
        each choice's effect (``effect_<choice>``) and the rating."""
        import pandas as pd

        n, d = self.rating.shape
        rows = {
            "dataset": np.repeat(np.arange(n), d),
            "parameter": np.tile(np.asarray(self.parameters, dtype=object), n),
        }
        rows |= {k: v.reshape(-1) for k, v in self.agreement.items()}
        rows |= {f"effect_{c}": v.reshape(-1) for c, v in self.effects.items()}
        rows["rating"] = self.rating.reshape(-1)
        return pd.DataFrame(rows)

    def universe_table(self):
        """A pandas DataFrame, one row per dataset, universe and parameter: posterior
        mean, sd and central interval."""
        import pandas as pd

        n, u, d = self.summaries["mean"].shape
        rows = {
            "dataset": np.repeat(np.arange(n), u * d),
            "universe": np.tile(np.repeat(np.asarray(self.universes, dtype=object), d), n),
            "parameter": np.tile(np.asarray(self.parameters, dtype=object), n * u),
        }
        rows |= {k: v.reshape(-1) for k, v in self.summaries.items()}
        return pd.DataFrame(rows)

    def write_report(
        self,
        path: Any,
        configuration: Mapping[str, Any] | None = None,
        history: Mapping[str, list] | None = None,
        dataset: int = 0,
    ):
        """Write the report folder (:mod:`amortized.diagnostics.multiverse_report`):
        ``multiverse.png`` (every universe's interval for ``dataset``, grouped by choice),
        ``choice_effects.png``, ``report.md`` / ``.html`` / ``.json``, ``metrics.csv``,
        ``multiverse.csv`` (:meth:`table`) and ``universes.csv`` (:meth:`universe_table`).
        Returns the folder."""
        from ..diagnostics.multiverse_report import multiverse_report, multiverse_table
        from ..diagnostics.plots.multiverse import choice_effects_plot, multiverse_intervals
        from ..diagnostics.report import write_report

        n = self.rating.shape[0]
        if not 0 <= dataset < n:
            raise IndexError(f"write_report: dataset={dataset} is out of range for {n} datasets")
        num_samples = next(iter(self.draws.values())).shape[2]
        table = multiverse_table(self.parameters, self.agreement, self.effects, num_samples)
        config = {
            "universes": len(self.universes),
            "choices": ", ".join(self.choices),
            "interval": self.interval,
            **(configuration or {}),
        }
        report = multiverse_report(table, self.rating, config, history, dataset)
        figures = {
            "multiverse": multiverse_intervals(
                {k: v[dataset] for k, v in self.summaries.items()},
                self.universes,
                self.parameters,
                f"dataset {dataset}",
            ),
            "choice_effects": choice_effects_plot(self.effects, self.parameters),
        }
        folder = write_report(path, report, figures, table, history)
        self.table().to_csv(folder / "multiverse.csv", index=False)
        self.universe_table().to_csv(folder / "universes.csv", index=False)
        return folder


def multiverse_analysis(
    estimator: Any,
    multiverse: Multiverse,
    data: Mapping[str, Any],
    *,
    universes: Any = None,
    num_samples: int = 2000,
    interval: float = 0.9,
    seed: int | None = None,
) -> MultiverseResult:
    """Every universe's posterior for every dataset in ``data``, summarized and compared
    (see the module docstring). ``universes``: which (default all; see
    :meth:`Multiverse.select`); ``interval``: the central interval's mass (default 0.9)."""
    picked = multiverse.select(universes)
    draws = multiverse_draws(
        estimator, multiverse, data, picked, num_samples=num_samples, seed=seed
    )
    per = [
        as_draws("multiverse_analysis", {k: v[:, u] for k, v in draws.items()},
                 require_targets=False)
        for u in range(len(picked))
    ]  # fmt: skip
    flat = np.stack([d.estimates for d in per], axis=1)
    names = per[0].names
    summaries = universe_summaries(flat, interval)
    agreement = multiverse_agreement(summaries)
    options = tuple(multiverse.universes[i] for i in picked)
    effects = choice_effects(summaries["mean"], agreement["within_sd"], options,
                             list(multiverse.choices))  # fmt: skip
    rating = rate_multiverse(
        agreement["spread_ratio"], agreement["sign_agreement"], agreement["excludes_zero"]
    )
    return MultiverseResult(
        universes=tuple(multiverse.names[i] for i in picked),
        options=options,
        choices=tuple(multiverse.choices),
        draws=draws,
        parameters=tuple(names),
        summaries=summaries,
        agreement=agreement,
        effects=effects,
        rating=rating,
        interval=float(interval),
    )
