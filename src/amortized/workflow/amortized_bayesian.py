"""The amortized Bayesian workflow (seed 004; Schmitt et al., arXiv 2409.04332).

Every dataset gets amortized draws; each step accepts what passes its check and hands the
rest on, so every dataset ends with draws that passed a check, or is marked for review:

1. amortized draws, accepted when the dataset lies inside the training distribution (the
   Mahalanobis distance of its network conditions, see :mod:`amortized.diagnostics.ood`);
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
import jax.numpy as jnp
import numpy as np

from .._random import child_seeds, stream_seeds
from .._validation import check_choice, check_positive_int, strict
from ..approximators.condition_checks import OutOfDistributionWarning
from ..approximators.protocol import density_estimator
from ..diagnostics.ood import SummaryReference, summary_reference
from ..diagnostics.psis import importance_log_weights, moment_match, psis, resample
from ..simulators import DensityModel
from .mcmc import chees_hmc_many, nuts_many

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


def _num_datasets(data: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(data.values())))


@dataclass
class WorkflowResult:
    """Per dataset: ``step`` (which step produced the accepted draws, or "review"),
    ``draws`` ``{site: (num_datasets, num_samples, *shape)}``, ``diagnostics`` (arrays over
    datasets: distance, ood, valid_draws (amortized draws in the support, after PSIS those
    with a finite weight), khat, psis_ess, nested_rhat, rhat, ess (bulk ESS of the last MCMC
    step run: ChEES, or NUTS after it), NaN where a step did not run; and note, why a
    dataset marked "review" was not accepted) and ``seconds`` per step."""

    step: np.ndarray
    draws: dict[str, np.ndarray]
    diagnostics: dict[str, np.ndarray]
    seconds: dict[str, float] = field(default_factory=dict)

    def table(self):
        """A pandas DataFrame, one row per dataset."""
        import pandas as pd

        return pd.DataFrame({"step": self.step, **self.diagnostics})

    def counts(self) -> dict[str, int]:
        return {s: int(np.sum(self.step == s)) for s in STEPS}

    def to_inference_data(self, dataset: int):
        """The final draws of one dataset as ArviZ InferenceData (one chain)."""
        import arviz as az

        return az.from_dict(
            posterior={k: v[dataset][None] for k, v in self.draws.items()},
            attrs={"amortized_step": str(self.step[dataset])},
        )


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
        self._density_fn = self._density  # one object, so jit caches hit across datasets
        self._densities = jax.jit(jax.vmap(self._density, in_axes=(0, None)))

    # -- flat unconstrained vectors ----------------------------------------------------
    def _flatten(self, params_u: Mapping[str, Any], lead: int) -> jax.Array:
        return self.model.flatten(params_u, lead)

    def _unflatten(self, vec: jax.Array) -> dict[str, jax.Array]:
        return self.model.unflatten(vec)

    def _simulator(self):
        sim = getattr(self.workflow, "simulator", None)
        return sim if sim is not None else self.model.simulator

    def reference(self, seed: int = 0) -> SummaryReference:
        """The out-of-distribution reference, from ``reference_simulations`` simulations."""
        if self._reference is None:
            sims = self._simulator().sample(self.reference_simulations, seed=seed)
            self._reference = summary_reference(self.estimator.embed(sims), self.alpha)
        return self._reference

    def _valid(self, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """``(num_datasets, S)``: draws inside the parameters' supports with finite values
        (a flow extrapolating far from its training data can overflow to inf or collapse
        onto a bound in float32)."""
        if self.model is None:
            return np.all(
                [np.all(np.isfinite(v.reshape(v.shape[:2] + (-1,))), -1) for v in draws.values()],
                axis=0,
            )
        u = self._flatten(self.model.to_unconstrained(draws), 2)
        return np.asarray(jnp.all(jnp.isfinite(u), axis=-1))

    def _log_q(self, draws, data, valid) -> np.ndarray:
        """log q(theta | y) of the draws, ``(num_datasets, S)``; -inf at invalid draws (a
        valid placeholder stands in for them, so the adapter's support checks pass)."""
        n, s = valid.shape
        zero = {k: np.zeros((1, 1, *self.model.shapes[k])) for k in self.model.latent_sites}
        place = self.model.to_constrained(zero)
        safe = {}
        for k, v in draws.items():
            v = np.asarray(v)
            fill = np.asarray(place[k]).reshape((1, 1) + v.shape[2:])
            safe[k] = np.where(valid.reshape((n, s) + (1,) * (v.ndim - 2)), v, fill)
        out = self.estimator.log_prob_of_draws(draws=safe, conditions=data)
        return np.where(valid, out, -np.inf)

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

    def _run(self, datasets: Mapping[str, Any], seed: int) -> WorkflowResult:
        if self.model is not None:
            self.model.check_data(datasets, "AmortizedBayesianWorkflow.run")
            caveat = self.estimator.log_prob_caveat
            if caveat is not None:
                raise ValueError(
                    "AmortizedBayesianWorkflow.run: importance weights p(y, theta) / "
                    "q(theta | y) need the exact density of the draws, and the "
                    f"approximator's log q is not that: {caveat}. Change that setting, or "
                    "run with model=None"
                )
            data = {k: np.asarray(datasets[k]) for k in self.model.observed}
        else:
            data = {k: np.asarray(v) for k, v in datasets.items()}
        n = _num_datasets(data)
        nan = np.full(n, np.nan)
        diag = {
            k: nan.copy()
            for k in (
                "distance",
                "valid_draws",
                "khat",
                "psis_ess",
                "psis_transforms",
                "nested_rhat",
                "rhat",
                "ess",
            )
        }
        diag["ood"] = np.zeros(n, bool)
        note = np.full(n, "", dtype=object)
        seconds = {}
        step = np.full(n, "", dtype=object)

        # one stream per purpose, split from the run's seed (never seed + i)
        streams = stream_seeds(seed, STREAMS)
        t = time.perf_counter()
        step1_log_q = None
        if self._psis_needs_step1_log_q():
            draws, step1_log_q = self.estimator.sample_and_log_prob(
                conditions=data, num_samples=self.num_samples, seed=streams["draws"]
            )
        else:
            draws = self.estimator.sample(
                conditions=data, num_samples=self.num_samples, seed=streams["draws"]
            )
        keys = self.model.latent_sites if self.model is not None else list(draws)
        draws = {k: np.array(draws[k]) for k in keys}
        valid = self._valid(draws)
        diag["valid_draws"] = valid.sum(axis=1).astype(float)
        ref = self.reference(streams["reference"])
        diag["distance"] = ref.distances(self.estimator.embed(data))
        diag["ood"] = diag["distance"] > ref.cutoff
        if self.force is None:
            step[~diag["ood"] & valid.all(axis=1)] = "amortized"
        note[diag["ood"]] = "out of distribution"
        note[~valid.all(axis=1)] = "amortized draws outside the support or non-finite"
        seconds["amortized"] = time.perf_counter() - t
        if self.model is None:
            step[step == ""] = "review"
            note[step == "review"] = [
                f"{m}; no likelihood for PSIS or MCMC" for m in note[step == "review"]
            ]
            seconds.update(psis=0.0, chees=0.0, nuts=0.0)
            return self._finish(step, draws, diag, note, seconds)

        t = time.perf_counter()
        todo = np.flatnonzero(step == "")
        if self.psis_in_distribution and self.force != "mcmc":
            todo = np.flatnonzero((step == "") | (step == "amortized"))
        resampled = {}
        if todo.size and self.force != "mcmc":
            resampled = self._psis_step(todo, draws, step1_log_q, data, step, diag, note, streams)
        seconds["psis"] = time.perf_counter() - t

        t = time.perf_counter()
        todo = np.flatnonzero(step == "")
        starts = {i: resampled.get(i, {k: draws[k][i] for k in draws}) for i in todo}
        for i, res in self._mcmc_batches("chees", starts, data, streams, note):
            diag["nested_rhat"][i] = float(np.max(res.rhat))
            diag["ess"][i] = float(np.min(res.ess))
            if np.all(res.rhat < self.rhat_threshold) and np.all(res.ess >= self.min_ess):
                step[i] = "chees"
                self._store(draws, i, res.draws)
        seconds["chees"] = time.perf_counter() - t

        t = time.perf_counter()
        todo = np.flatnonzero(step == "")
        step[todo] = "review"
        starts = {i: {k: draws[k][i] for k in draws} for i in todo}
        for i, res in self._mcmc_batches("nuts", starts, data, streams, note):
            diag["rhat"][i], diag["ess"][i] = float(np.max(res.rhat)), float(np.min(res.ess))
            ok = np.all(res.rhat < self.rhat_threshold) and np.all(res.ess >= self.min_ess)
            self._store(draws, i, res.draws)
            if ok:
                step[i] = "nuts"
            else:
                note[i] = (
                    f"NUTS did not converge (max R-hat {diag['rhat'][i]:.3f}, "
                    f"min ESS {diag['ess'][i]:.0f})"
                )
        seconds["nuts"] = time.perf_counter() - t
        return self._finish(step, draws, diag, note, seconds)

    def _psis_needs_step1_log_q(self) -> bool:
        """Whether step 1 draws with their log q: for PSIS of in-distribution datasets (log q
        of every dataset's draws is needed), or when it comes free with the draws."""
        if self.model is None or self.force == "mcmc":
            return False
        return self.psis_in_distribution or self.estimator.one_pass_log_prob

    def _psis_step(self, todo, draws, step1_log_q, data, step, diag, note, streams) -> dict:
        """PSIS for the datasets ``todo``: the step-1 draws plus ``psis_samples -
        num_samples`` fresh ones as proposals, moment matching where k-hat fails; accepted
        datasets get the resampled draws and step "psis". Returns every dataset's resampled
        draws (MCMC starting points)."""
        sub_data = {k: v[todo] for k, v in data.items()}
        step1 = {k: v[todo] for k, v in draws.items()}
        sub, log_q = step1, [None]
        extra = self.psis_samples - self.num_samples
        if extra:
            fresh, fresh_q = self.estimator.sample_and_log_prob(
                conditions=sub_data, num_samples=extra, seed=streams["psis_draws"]
            )
            sub = {k: np.concatenate([v, np.asarray(fresh[k])], axis=1) for k, v in sub.items()}
            log_q.append(fresh_q)
        # unconstrained once: validity (as in _valid) and the space of moment matching
        flat_u = np.asarray(self._flatten(self.model.to_unconstrained(sub), 2), np.float64)
        sub_valid = np.all(np.isfinite(flat_u), axis=-1)
        if step1_log_q is None:
            log_q[0] = self._log_q(step1, sub_data, sub_valid[:, : self.num_samples])
        else:
            log_q[0] = step1_log_q[todo]
        log_q = np.where(sub_valid, np.concatenate(log_q, axis=1), -np.inf)
        lw = importance_log_weights(self.model.log_joint(sub, sub_data), log_q)
        r = psis(lw)
        diag["khat"][todo], diag["psis_ess"][todo] = r.khat, r.ess
        diag["valid_draws"][todo] = np.isfinite(lw).sum(axis=1)
        if self.moment_matching and not r.accepted.all():
            # the proposal density in unconstrained space: log q(T(u)) + log |det J_T(u)|
            safe = np.where(sub_valid[..., None], flat_u, 0.0)
            log_q_u = log_q + np.asarray(
                self.model.log_abs_det_jacobian(self._unflatten(jnp.asarray(safe))), np.float64
            )
        resampled = {}
        resample_seeds = child_seeds(streams["resample"], _num_datasets(data))
        for j, i in enumerate(todo):
            if not np.isfinite(lw[j]).any():
                note[i] = "no amortized draw has a finite importance weight"
                continue
            u, weights, ok = flat_u[j], r.log_weights[j], bool(r.accepted[j])
            if not ok and self.moment_matching:
                keep = sub_valid[j] & np.isfinite(log_q_u[j])
                mm = self._moment_match(u[keep], log_q_u[j][keep], self._one(i, data))
                diag["khat"][i], diag["psis_ess"][i] = mm.psis.khat[0], mm.psis.ess[0]
                diag["psis_transforms"][i] = mm.transforms
                u, weights, ok = mm.draws, mm.psis.log_weights[0], bool(mm.psis.accepted[0])
            idx = resample(np.arange(len(u)), weights, self.num_samples, seed=resample_seeds[i])
            theta = self.model.to_constrained(self._unflatten(jnp.asarray(u[idx])))
            resampled[i] = {k: np.asarray(theta[k]).reshape(draws[k][i].shape) for k in draws}
            if ok:
                step[i] = "psis"
                for k in draws:
                    draws[k][i] = resampled[i][k]
        return resampled

    def _moment_match(self, u, log_q_u, data_one):
        """Moment matching (:func:`amortized.diagnostics.psis.moment_match`) of one
        dataset's proposals ``u (S, dim)`` in the unconstrained space."""
        size = self.psis_samples

        def target(x):  # padded to a fixed row count: one compilation for all datasets
            pad = np.zeros((size - len(x), x.shape[1]))
            out = self._densities(jnp.asarray(np.concatenate([x, pad]), jnp.float32), data_one)
            return np.asarray(out, np.float64)[: len(x)]

        return moment_match(u, log_q_u, target, self.moment_matching_iterations)

    def _finish(self, step, draws, diag, note, seconds) -> WorkflowResult:
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
        return WorkflowResult(step.astype(str), draws, diag, seconds)

    def _mcmc_batches(self, kind, params, data, streams, note):
        """Yield ``(dataset, McmcResult)`` for ChEES (``kind="chees"``) or NUTS, vmapped over
        batches of ``mcmc_batch`` datasets (the last one padded, so one compilation serves
        all). A dataset without usable starting points, or a batch that fails numerically,
        gets its reason in ``note`` and no result; the other datasets go on."""
        chains = self.num_superchains if kind == "chees" else self.nuts_chains
        n = _num_datasets(data)
        start_seeds = child_seeds(streams[f"{kind}_starts"], n)
        chain_seeds = child_seeds(streams[kind], n)
        starts = {}
        for i, p in params.items():
            try:
                starts[i] = self._starts(i, p, chains, data, start_seeds[i])
            except ValueError as e:
                note[i] = f"{kind}: {e}"
        order = list(starts)
        if not order:
            return
        size = min(self.mcmc_batch, 1 << (len(order) - 1).bit_length())
        for b in range(0, len(order), size):
            idx = order[b : b + size]
            padded = idx + [idx[-1]] * (size - len(idx))
            init = np.stack([starts[i] for i in padded])
            batch = {k: jnp.asarray(np.asarray(v)[padded]) for k, v in data.items()}
            seeds = [chain_seeds[i] for i in padded]
            try:
                if kind == "chees":
                    results = chees_hmc_many(self._density_fn, init, batch, seeds, **self.chees)
                else:
                    results = nuts_many(self._density_fn, init, batch, seeds, **self.nuts)
            except (ValueError, FloatingPointError, RuntimeError) as e:
                for i in idx:
                    note[i] = f"{kind}: {type(e).__name__}: {e}"
                continue
            yield from zip(idx, results[: len(idx)], strict=True)

    def _density(self, u, data_one):
        return self.model.log_joint_unconstrained(self._unflatten(u), data_one)

    def _one(self, i, data):
        return {k: jnp.asarray(v[i]) for k, v in data.items()}

    def _starts(self, i, params, num, data, seed):
        """``num`` distinct starting points with finite log density: amortized (or
        PSIS-resampled) draws first, prior draws to make up a shortfall."""
        data_one = self._one(i, data)

        def finite(u):
            # densities of all rows (a fixed count: the jitted call compiles once), then the
            # distinct usable ones (resampled draws repeat)
            u = np.asarray(u)
            ok = np.all(np.isfinite(u), axis=1)
            safe = jnp.asarray(np.where(ok[:, None], u, 0.0))
            ok &= np.isfinite(np.asarray(self._densities(safe, data_one)))
            return np.unique(u[ok], axis=0)

        order_seed, prior_seed = child_seeds(seed, 2)
        ok = finite(self._flatten(self.model.to_unconstrained(params), 1))
        ok = ok[np.random.default_rng(order_seed).permutation(len(ok))]
        if len(ok) < num:
            prior = self._simulator().sample(max(64, 4 * num), seed=prior_seed)
            site = {k: prior[k] for k in self.model.latent_sites}
            ok = np.concatenate([ok, finite(self._flatten(self.model.to_unconstrained(site), 1))])
        if len(ok) < num:
            raise ValueError(
                f"{len(ok)} of the amortized and prior draws have a finite log density for this "
                f"dataset; {num} starting points are needed"
            )
        return ok[:num]

    def _store(self, draws, i, mcmc_draws):
        """Thin the MCMC draws (all chains pooled) to ``num_samples`` constrained draws."""
        flat = mcmc_draws.reshape(-1, mcmc_draws.shape[-1])
        idx = np.linspace(0, len(flat) - 1, self.num_samples).astype(int)
        theta = self.model.to_constrained(self._unflatten(jnp.asarray(flat[idx])))
        for k in draws:
            draws[k][i] = np.asarray(theta[k]).reshape(draws[k][i].shape)
