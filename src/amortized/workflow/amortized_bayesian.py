"""The amortized Bayesian workflow (seed 004; Schmitt et al., arXiv 2409.04332).

Every dataset gets amortized draws; each step accepts what passes its check and hands the
rest on, so every dataset ends with draws that passed a check, or is marked for review:

1. amortized draws, accepted when the dataset lies inside the training distribution (the
   Mahalanobis distance of its network conditions, see :mod:`amortized.diagnostics.ood`)
   and, from an ensemble (:class:`~amortized.workflow.ensemble.EnsembleWorkflow`), when its
   members agree (``diagnostics["disagreement"]`` below the threshold of
   :mod:`amortized.diagnostics.ensemble_disagreement`; NaN for a single network);
2. PSIS with ``psis_samples`` amortized proposals (the step-1 draws and fresh ones) and
   weights ``p(y | theta) p(theta) / q(theta | y)``, accepted when
   ``k-hat <= min(1 - 1/log10 S, 0.7)``; where k-hat fails, the proposals are moved by
   affine moment matching (:func:`amortized.diagnostics.psis.moment_match`) while that
   lowers k-hat. Accepted draws are resampled to ``num_samples`` (draws outside the support
   or with a non-finite density get weight zero). By default the datasets that step 1
   accepted go through PSIS too (``psis_in_distribution``): when it passes they get the
   importance-resampled draws (step "psis"), otherwise they keep their amortized draws;
3. ChEES-HMC: superchains started from distinct (PSIS-resampled) amortized draws, accepted
   when nested R-hat < ``rhat_threshold`` and the bulk ESS (all chains) is at least
   ``min_ess`` for every parameter (nested R-hat alone passed, at 1.001, chains whose 6,400
   draws held an ESS of 54 for one parameter and a mean 0.34 posterior sd off NUTS's);
4. NUTS from amortized draws, accepted when R-hat < ``rhat_threshold`` and the bulk ESS is at
   least ``min_ess``; otherwise the dataset is marked ``"review"`` and its NUTS draws are
   kept but not accepted.

Usage (a trained ``BasicWorkflow`` and a ``NumPyroModel`` of the same sites; the whole
pipeline runs in ``tests/workflow/test_amortized_bayesian.py`` and ``benchmarks/gev.py``)::

    abw = AmortizedBayesianWorkflow(workflow, model)
    result = abw.run({"y": observed}, seed=1)
    result.table()                                        # one row per dataset
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from .._random import child_seeds, stream_seeds
from .._validation import check_choice, check_positive_int, strict
from ..approximators.condition_checks import OutOfDistributionWarning
from ..approximators.protocol import density_estimator
from ..diagnostics.ood import SummaryReference
from ..simulators import DensityModel
from .abw_steps import (
    McmcStep,
    UnconstrainedTarget,
    amortized_step,
    mcmc_step,
    num_datasets,
    psis_step,
    reference_step,
)

STEPS = ("amortized", "psis", "chees", "nuts", "review")
# a run's random streams, each split from its seed: step-1 draws, the reference simulations,
# PSIS's extra proposals, resampling, and per MCMC kind the starting points and the chains
STREAMS = (
    "draws",
    "reference",
    "psis_draws",
    "resample",
    "chees_starts",
    "chees",
    "nuts_starts",
    "nuts",
)
#: per-dataset diagnostics (floats, NaN where a step did not run), in the table's order
DIAGNOSTICS = (
    "distance",
    "misspecification_p",
    "disagreement",
    "valid_draws",
    "self_consistency",
    "khat",
    "psis_ess",
    "psis_transforms",
    "nested_rhat",
    "rhat",
    "ess",
)


@dataclass
class WorkflowResult:
    """Per dataset: ``step`` (which step produced the accepted draws, or "review"),
    ``draws`` ``{site: (num_datasets, num_samples, *shape)}``, ``diagnostics`` (arrays over
    datasets: distance, ood, misspecification_p (the kernel misspecification test's p-value
    in the same summary space, :mod:`amortized.diagnostics.misspecification`),
    disagreement (an ensemble's), valid_draws (amortized draws in the support, after PSIS those
    with a finite weight), self_consistency (the robust sd over PSIS's amortized proposals of
    log p(theta, y) - log q(theta | y), in nats: 0 for an exact posterior), khat, psis_ess,
    nested_rhat, rhat, ess (bulk ESS of the last MCMC step run: ChEES, or NUTS after it),
    NaN where a step did not run; and note, why a
    dataset marked "review" was not accepted), ``seconds`` per step and ``observed``, the
    data the run was given ``{name: (num_datasets, ...)}``."""

    step: np.ndarray
    draws: dict[str, np.ndarray]
    diagnostics: dict[str, np.ndarray]
    seconds: dict[str, float] = field(default_factory=dict)
    observed: dict[str, np.ndarray] = field(default_factory=dict)

    def table(self):
        """A pandas DataFrame, one row per dataset."""
        import pandas as pd

        return pd.DataFrame({"step": self.step, **self.diagnostics})

    def counts(self) -> dict[str, int]:
        return {s: int(np.sum(self.step == s)) for s in STEPS}

    def _groups(self, dataset: int) -> dict[str, dict[str, np.ndarray]]:
        """One dataset's draws (one chain) and observed data, as ArviZ groups."""
        _check_dataset(dataset, len(self.step))
        groups = {"posterior": {k: v[dataset][None] for k, v in self.draws.items()}}
        if self.observed:
            groups["observed_data"] = {k: v[dataset] for k, v in self.observed.items()}
        return groups

    def _attrs(self, dataset: int) -> dict[str, Any]:
        attrs = {"amortized_step": str(self.step[dataset])}
        return attrs | {f"amortized_{k}": _attr(v[dataset]) for k, v in self.diagnostics.items()}

    def to_inference_data(self, dataset: int):
        """The final draws of one dataset as ArviZ (before 1.0) InferenceData: ``posterior``
        (one chain), ``observed_data``, and the step and diagnostics as attributes."""
        import arviz as az

        groups = self._groups(dataset)
        return az.from_dict(
            posterior=groups["posterior"],
            observed_data=groups.get("observed_data"),
            attrs=self._attrs(dataset),
        )

    def to_datatree(self, dataset: int):
        """The final draws of one dataset as ArviZ 1.x data, an ``xarray.DataTree`` with
        ``posterior`` (one chain; ``arviz_base.from_dict``) and ``observed_data`` groups;
        the step that accepted the draws and the dataset's diagnostics (k-hat, R-hat, ESS,
        ...) are the tree's attributes, ``amortized_<name>``. (ArviZ's ``sample_stats``
        holds one value per draw; these are one per dataset.) ``arviz_stats.summary``,
        ``arviz_plots.plot_dist`` and the other ArviZ 1.x functions take it.

        >>> r = WorkflowResult(np.array(["psis"]), {"mu": np.zeros((1, 4, 1))},
        ...                    {"khat": np.array([0.2])}, observed={"y": np.ones((1, 3))})
        >>> tree = r.to_datatree(0)
        >>> sorted(tree.children), tree.attrs["amortized_khat"]
        (['observed_data', 'posterior'], 0.2)
        """
        from arviz_base import from_dict

        tree = from_dict(self._groups(dataset))
        tree.attrs.update(self._attrs(dataset))
        return tree


def _check_dataset(dataset: int, n: int) -> None:
    if isinstance(dataset, bool) or not isinstance(dataset, int | np.integer):
        raise TypeError(f"dataset must be an int index, got {dataset!r}")
    if not -n <= dataset < n:
        raise IndexError(f"dataset={dataset} is out of range for {n} dataset(s)")


def _attr(value):
    """A diagnostic as a plain Python value (netCDF-friendly attributes)."""
    value = np.asarray(value).item()
    return value if not isinstance(value, bool) else int(value)


class AmortizedBayesianWorkflow:
    """Run the four steps over many datasets (see the module docstring).

    Parameters
    ----------
    workflow : BasicWorkflow, ContinuousApproximator or EnsembleApproximator
        Trained; any estimator with a density (:class:`~amortized.approximators.protocol.
        DensityEstimator`), or a workflow holding one. Its posterior draws are keyed by the
        model's latent site names. Reference simulations come from the workflow's simulator,
        else the model's.
    model : NumPyroModel
        The same model: log densities for PSIS and MCMC.
    num_samples : int, default 1000
    alpha : float, default 0.05
        Out-of-distribution cut-off at the ``1 - alpha`` quantile of training distances.
    rhat_threshold : float, default 1.01
    min_ess : float, default 400
        Bulk ESS that ChEES and NUTS draws need to be accepted.
    num_superchains, num_subchains : int, optional
        ChEES chains: superchains (distinct starting points) x subchains each. Default 4 x 8
        on a CPU, 8 x 16 on an accelerator: the chains run vectorized, which is nearly free
        on a GPU, but on a CPU the cost grows with the chain count (on 2 cores 128 chains
        cost several times NUTS, the next step; BENCHMARKS.md's log has the timings).
    chees_warmup, chees_draws : int, default 200, 200
        After warm-up, draws are cheap next to the adaptation, and nested R-hat of
        stationary but autocorrelated chains shrinks with subchains x draws: with 25 draws,
        chains at lag-1 autocorrelation 0.8 already give a median nested R-hat of 1.012
        (above the 1.01 threshold); GEV datasets passed 4 of 16 with 25 draws and 12 of 16
        with 200, at 1.3x the time.
    nuts_chains, nuts_warmup, nuts_draws : NUTS settings (defaults 4, 500, 500).
    force : {None, "psis", "mcmc"}
        ``"psis"`` sends every dataset through PSIS, ``"mcmc"`` every dataset to ChEES.
    reference_simulations : int, default 2000
        Simulations whose conditions form the out-of-distribution reference.
    psis_samples : int, default ``4 * num_samples``
        Amortized proposals per dataset for importance sampling (the ``num_samples`` step-1
        draws and fresh ones), resampled to ``num_samples``: drawing is cheap (a coupling
        flow gives log q in the same pass), and more proposals mean fewer repeated draws
        after resampling and a better-estimated k-hat.
    psis_in_distribution : bool, default True
        PSIS also for the datasets that step 1 accepted (see the module docstring). The
        distance check alone says the dataset looks like training data, not that the
        network is accurate there; importance weights correct what they can at the cost of
        one log density per proposal (GEV, 10^4 training simulations: mean marginal total
        variation to NUTS 0.19 for amortized draws, 0.11 after PSIS).
    moment_matching : bool, default True
    moment_matching_iterations : int, default 10
        At most this many affine maps kept per dataset.
    mcmc_batch : int, default 1
        Datasets whose ChEES (or NUTS) chains run together, vmapped in one compiled call.
        Larger batches pay off on accelerators; on a CPU every dataset of a batch waits for
        the batch's longest trajectories (GEV, 2 cores: 16 datasets took 42 s batched, 36 s
        one by one).
    """

    @strict
    def __init__(
        self,
        workflow: Any,
        model: DensityModel | None,
        num_samples: int = 1000,
        alpha: float = 0.05,
        rhat_threshold: float = 1.01,
        min_ess: float = 400.0,
        num_superchains: int | None = None,
        num_subchains: int | None = None,
        chees_warmup: int = 200,
        chees_draws: int = 200,
        nuts_chains: int = 4,
        nuts_warmup: int = 500,
        nuts_draws: int = 500,
        force: str | None = None,
        reference_simulations: int = 2000,
        psis_samples: int | None = None,
        mcmc_batch: int = 1,
        psis_in_distribution: bool = True,
        moment_matching: bool = True,
        moment_matching_iterations: int = 10,
    ):
        check_choice("AmortizedBayesianWorkflow", "force", force, [None, "psis", "mcmc"])
        if model is not None and not isinstance(model, DensityModel):
            raise TypeError(
                f"AmortizedBayesianWorkflow: model must give log densities (a bf.NumPyroModel, "
                f"or a bf.LikelihoodModel wrapping a simulator with a JAX log-likelihood), got "
                f"{type(model).__name__}. A simulator alone has no likelihood for PSIS or MCMC: "
                f"pass model=None to run only the amortized step (datasets it does not accept "
                f"are then marked 'review')"
            )
        if model is None and force is not None:
            raise ValueError(
                f"AmortizedBayesianWorkflow: force={force!r} needs a model with a likelihood "
                f"(PSIS weights and MCMC use log p(y | theta) + log p(theta)); got model=None"
            )
        self.estimator = density_estimator(workflow, "AmortizedBayesianWorkflow(workflow)")
        self.workflow, self.model = workflow, model
        self.num_samples = int(num_samples)
        self.alpha, self.rhat_threshold, self.min_ess = alpha, rhat_threshold, min_ess
        cpu = jax.default_backend() == "cpu"
        if num_superchains is None:
            num_superchains = 4 if cpu else 8
        if num_subchains is None:
            num_subchains = 8 if cpu else 16
        self.chees = dict(
            num_subchains=check_positive_int(
                "AmortizedBayesianWorkflow", "num_subchains", num_subchains
            ),
            num_warmup=chees_warmup,
            num_draws=chees_draws,
        )
        self.num_superchains = check_positive_int(
            "AmortizedBayesianWorkflow", "num_superchains", num_superchains
        )
        self.nuts = dict(num_warmup=nuts_warmup, num_draws=nuts_draws)
        self.nuts_chains = int(nuts_chains)
        self.force = force
        self.reference_simulations = int(reference_simulations)
        self.psis_samples = 4 * self.num_samples if psis_samples is None else int(psis_samples)
        if self.psis_samples < self.num_samples:
            raise ValueError(
                f"AmortizedBayesianWorkflow: psis_samples must be at least num_samples "
                f"({self.num_samples}), got {psis_samples}"
            )
        self.mcmc_batch = check_positive_int("AmortizedBayesianWorkflow", "mcmc_batch", mcmc_batch)
        self.psis_in_distribution = bool(psis_in_distribution)
        self.moment_matching = bool(moment_matching)
        self.moment_matching_iterations = check_positive_int(
            "AmortizedBayesianWorkflow", "moment_matching_iterations", moment_matching_iterations
        )
        self._reference: SummaryReference | None = None
        self._target = UnconstrainedTarget(model) if model is not None else None

    def _simulator(self):
        sim = getattr(self.workflow, "simulator", None)
        return sim if sim is not None else self.model.simulator

    def reference(self, seed: int = 0) -> SummaryReference:
        """The out-of-distribution reference, from ``reference_simulations`` simulations
        (made on the first call and kept)."""
        if self._reference is None:
            self._reference = reference_step(
                self.estimator, self._simulator(), self.reference_simulations, self.alpha, seed
            )
        return self._reference

    # -- the run -----------------------------------------------------------------------
    def run(self, datasets: Mapping[str, Any], seed: int = 0) -> WorkflowResult:
        """All four steps for ``datasets`` ``{observed_site: (num_datasets, ...)}``.

        A dataset whose draws or densities fail numerically does not stop the others: it
        moves on to the next step, and one that no step accepts is marked ``"review"`` with
        the reason in ``diagnostics["note"]``. The approximator's cheap range warning
        (:class:`~amortized.approximators.condition_checks.OutOfDistributionWarning`) is
        silenced here: this workflow runs the calibrated out-of-distribution test itself
        and reports it per dataset (``diagnostics["ood"]``).
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OutOfDistributionWarning)
            return self._run(datasets, seed)

    def _data(self, datasets: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if self.model is None:
            return {k: np.asarray(v) for k, v in datasets.items()}
        self.model.check_data(datasets, "AmortizedBayesianWorkflow.run")
        caveat = self.estimator.log_prob_caveat
        if caveat is not None:
            raise ValueError(
                "AmortizedBayesianWorkflow.run: importance weights p(y, theta) / "
                "q(theta | y) need the exact density of the draws, and the "
                f"approximator's log q is not that: {caveat}. Change that setting, or "
                "run with model=None"
            )
        return {k: np.asarray(datasets[k]) for k in self.model.observed}

    def _run(self, datasets: Mapping[str, Any], seed: int) -> WorkflowResult:
        data = self._data(datasets)
        n = num_datasets(data)
        diag = {k: np.full(n, np.nan) for k in DIAGNOSTICS}
        note = np.full(n, "", dtype=object)
        step = np.full(n, "", dtype=object)
        seconds = {}
        # one stream per purpose, split from the run's seed (never seed + i)
        streams = stream_seeds(seed, STREAMS)

        t = time.perf_counter()
        first = amortized_step(
            self.estimator,
            self.model,
            data,
            self.reference(streams["reference"]),
            num_samples=self.num_samples,
            with_log_q=self._psis_needs_step1_log_q(),
            seed=streams["draws"],
        )
        draws = {k: v.copy() for k, v in first.draws.items()}
        diag["valid_draws"] = first.valid.sum(axis=1).astype(float)
        diag["distance"], diag["ood"] = first.distance, first.ood
        if first.misspecification_p is not None:
            diag["misspecification_p"] = first.misspecification_p
        if first.disagreement is not None:
            diag["disagreement"] = first.disagreement
            note[first.disagree] = "ensemble members disagree"
        if self.force is None:
            step[first.accepted] = "amortized"
        note[first.ood] = "out of distribution"
        note[~first.valid.all(axis=1)] = "amortized draws outside the support or non-finite"
        seconds["amortized"] = time.perf_counter() - t
        if self.model is None:
            step[step == ""] = "review"
            note[step == "review"] = [
                f"{m}; no likelihood for PSIS or MCMC" for m in note[step == "review"]
            ]
            seconds.update(psis=0.0, chees=0.0, nuts=0.0)
            return self._finish(step, draws, diag, note, seconds, data)

        t = time.perf_counter()
        resampled = {}
        if self.force != "mcmc":
            todo = np.flatnonzero(
                (step == "") | ((step == "amortized") & self.psis_in_distribution)
            )
            if todo.size:
                resampled = self._psis(todo, first, draws, data, streams, step, diag, note)
        seconds["psis"] = time.perf_counter() - t

        for kind in ("chees", "nuts"):
            t = time.perf_counter()
            todo = np.flatnonzero(step == "")
            if kind == "chees":
                starts = {i: resampled.get(i, {k: draws[k][i] for k in draws}) for i in todo}
            else:
                step[todo] = "review"
                starts = {i: {k: draws[k][i] for k in draws} for i in todo}
            res = self._mcmc(kind, data, starts, streams)
            for i, msg in res.note.items():
                note[i] = msg
            for i in res.rhat:
                diag["nested_rhat" if kind == "chees" else "rhat"][i] = res.rhat[i]
                diag["ess"][i] = res.ess[i]
                if res.accepted[i] or kind == "nuts":  # NUTS draws are kept for review
                    for k in draws:
                        draws[k][i] = res.draws[i][k]
                if res.accepted[i]:
                    step[i] = kind
            seconds[kind] = time.perf_counter() - t
        return self._finish(step, draws, diag, note, seconds, data)

    def _psis_needs_step1_log_q(self) -> bool:
        """Whether step 1 draws with their log q: for PSIS of in-distribution datasets (log q
        of every dataset's draws is needed), or when it comes free with the draws."""
        if self.model is None or self.force == "mcmc":
            return False
        return self.psis_in_distribution or self.estimator.one_pass_log_prob

    def _psis(self, todo, first, draws, data, streams, step, diag, note) -> dict:
        """:func:`psis_step` for the datasets ``todo``; the accepted ones get the resampled
        draws (in ``draws``) and step "psis". Returns every dataset's resampled draws
        (MCMC starting points)."""
        resample_seeds = child_seeds(streams["resample"], num_datasets(data))
        res = psis_step(
            self.estimator,
            self._target,
            {k: v[todo] for k, v in data.items()},
            {k: v[todo] for k, v in first.draws.items()},
            None if first.log_q is None else first.log_q[todo],
            psis_samples=self.psis_samples,
            moment_matching=self.moment_matching,
            moment_matching_iterations=self.moment_matching_iterations,
            draw_seed=streams["psis_draws"],
            resample_seeds=[resample_seeds[i] for i in todo],
        )
        diag["khat"][todo], diag["psis_ess"][todo] = res.khat, res.ess
        diag["psis_transforms"][todo] = res.transforms
        diag["valid_draws"][todo] = res.valid_draws
        diag["self_consistency"][todo] = res.self_consistency
        resampled = {}
        for j, i in enumerate(todo):
            if res.note[j]:
                note[i] = res.note[j]
            if res.resampled[j] is None:
                continue
            resampled[i] = res.resampled[j]
            if res.accepted[j]:
                step[i] = "psis"
                for k in draws:
                    draws[k][i] = resampled[i][k]
        return resampled

    def _mcmc(self, kind, data, starts, streams) -> McmcStep:
        n = num_datasets(data)
        return mcmc_step(
            kind,
            self._target,
            self._simulator(),
            data,
            starts,
            chains=self.num_superchains if kind == "chees" else self.nuts_chains,
            settings=self.chees if kind == "chees" else self.nuts,
            batch=self.mcmc_batch,
            rhat_threshold=self.rhat_threshold,
            min_ess=self.min_ess,
            start_seeds=child_seeds(streams[f"{kind}_starts"], n),
            chain_seeds=child_seeds(streams[kind], n),
            num_samples=self.num_samples,
        )

    def _finish(self, step, draws, diag, note, seconds, data) -> WorkflowResult:
        done = step != "review"
        note[done & (step != "")] = ""
        diag["note"] = note.astype(str)
        review = int(np.sum(~done))
        if review:
            warnings.warn(
                f"AmortizedBayesianWorkflow: {review} dataset(s) passed no check and are marked "
                f"'review' (their draws are not accepted); reasons in result.diagnostics['note']",
                stacklevel=3,
            )
        return WorkflowResult(step.astype(str), draws, diag, seconds, data)
