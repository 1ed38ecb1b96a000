"""The steps of the amortized Bayesian workflow as pure functions.

Each step takes what it works on (an estimator, a model's log density, data, draws) and
the seeds of its random streams, and returns its result and diagnostics as a frozen value;
nothing is mutated and nothing is kept between calls, so a step can be run, tested and
repeated on its own (same inputs and seeds, same result).
:class:`~amortized.workflow.amortized_bayesian.AmortizedBayesianWorkflow` only sequences
them: which datasets each step gets, and which draws each dataset keeps.

- :func:`amortized_step`: draws (and their log q), their validity, the out-of-distribution
  distance of each dataset;
- :func:`psis_step`: Pareto-smoothed importance sampling with moment matching, and the
  importance-resampled draws;
- :func:`mcmc_step`: ChEES-HMC or NUTS from distinct starting points, with R-hat and ESS.

Seeds are integers split from the run's seed by :func:`amortized._random.child_seeds` (one
stream per purpose and per dataset, never ``seed + i``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._random import child_seeds
from ..diagnostics.marginal_likelihood import consistency_spread
from ..diagnostics.ood import SummaryReference
from ..diagnostics.psis import importance_log_weights, moment_match, psis, resample
from ..simulators import DensityModel
from .mcmc import chees_hmc_many, nuts_many

Draws = dict[str, np.ndarray]


class UnconstrainedTarget:
    """The model's log joint density of one dataset in its unconstrained space, ``u (dim,)``
    -> ``log p(y, theta(u)) + log |det J(u)|``: :attr:`density` for MCMC (one object, so
    that compiled samplers are reused across datasets) and :attr:`densities`, compiled and
    vectorized over rows of ``u``."""

    def __init__(self, model: DensityModel):
        self.model = model
        self.density = self._density
        self.densities = jax.jit(jax.vmap(self._density, in_axes=(0, None)))

    def _density(self, u, data_one):
        return self.model.log_joint_unconstrained(self.model.unflatten(u), data_one)


def one_dataset(data: Mapping[str, np.ndarray], i: int) -> dict[str, jax.Array]:
    """Dataset ``i`` of a batch of datasets, as JAX arrays."""
    return {k: jnp.asarray(v[i]) for k, v in data.items()}


def num_datasets(data: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(data.values())))


# -- step 1 ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AmortizedStep:
    """``draws {site: (n, S, *shape)}``; ``log_q (n, S)`` when asked for, else None;
    ``valid (n, S)``: draws inside the support with finite values; ``distance (n,)`` and
    ``ood (n,)``: the out-of-distribution distance and its verdict; ``misspecification_p
    (n,)``: the p-value of the kernel misspecification test in the same space (NaN when
    the reference has too few simulations for it; reported, not a gate); for an ensemble,
    ``disagreement (n,)`` (the largest over parameters of the members' disagreement and
    log sd spread, :mod:`amortized.diagnostics.ensemble_disagreement`) and ``disagree
    (n,)``, its verdict (all False for a single network)."""

    draws: Draws
    log_q: np.ndarray | None
    valid: np.ndarray
    distance: np.ndarray
    ood: np.ndarray
    disagreement: np.ndarray | None = None
    disagree: np.ndarray | None = None
    misspecification_p: np.ndarray | None = None

    @property
    def accepted(self) -> np.ndarray:
        """In distribution, every draw valid, and (an ensemble) the members agree."""
        ok = ~self.ood & self.valid.all(axis=1)
        return ok if self.disagree is None else ok & ~self.disagree


def valid_draws(model: DensityModel | None, draws: Mapping[str, np.ndarray]) -> np.ndarray:
    """``(n, S)``: draws inside the parameters' supports with finite values (a flow
    extrapolating far from its training data can overflow to inf or collapse onto a bound
    in float32); without a model, finite values."""
    if model is None:
        return np.all(
            [np.all(np.isfinite(v.reshape(v.shape[:2] + (-1,))), -1) for v in draws.values()],
            axis=0,
        )
    u = model.flatten(model.to_unconstrained(draws), 2)
    return np.asarray(jnp.all(jnp.isfinite(u), axis=-1))


def amortized_step(
    estimator,
    model: DensityModel | None,
    data: Mapping[str, np.ndarray],
    reference: SummaryReference,
    *,
    num_samples: int,
    with_log_q: bool,
    seed: int,
) -> AmortizedStep:
    """Amortized draws for every dataset of ``data`` (with their log q when
    ``with_log_q``), keyed by the model's latent sites, and each dataset's distance to the
    training data in the space of the network's conditions (``reference``); from an
    ensemble (an estimator with ``sample_and_disagreement`` and several members), also how
    far its members disagree on each dataset, from the same member draws."""
    log_q = dis = None
    if getattr(estimator, "sample_and_disagreement", None) is not None and len(estimator) > 1:
        draws, dis = estimator.sample_and_disagreement(
            conditions=data, num_samples=num_samples, seed=seed
        )
        if with_log_q:
            log_q = estimator.log_prob_of_draws(draws=draws, conditions=data)
    elif with_log_q:
        draws, log_q = estimator.sample_and_log_prob(
            conditions=data, num_samples=num_samples, seed=seed
        )
    else:
        draws = estimator.sample(conditions=data, num_samples=num_samples, seed=seed)
    keys = model.latent_sites if model is not None else list(draws)
    draws = {k: np.array(draws[k]) for k in keys}
    embedded = estimator.embed(data)
    distance = reference.distances(embedded)
    ood = distance > reference.cutoff
    valid = valid_draws(model, draws)
    mis_p = _misspecification_p(reference, embedded)
    if dis is None:
        return AmortizedStep(draws, log_q, valid, distance, ood, misspecification_p=mis_p)
    worst = np.maximum(dis.disagreement, dis.log_sd_spread).max(axis=1)
    return AmortizedStep(draws, log_q, valid, distance, ood, worst, dis.flagged, mis_p)


def _misspecification_p(reference: SummaryReference, embedded: np.ndarray) -> np.ndarray:
    n = len(embedded)
    summaries = reference.summaries
    if summaries is None or len(summaries) // 2 < 2 * summaries.shape[1] + 2:
        return np.full(n, np.nan)
    if (len(summaries) - len(summaries) // 2) * reference.alpha < 1:
        return np.full(n, np.nan)
    return reference.misspecification_p(embedded)


def log_q_of_draws(estimator, model: DensityModel, draws: Draws, data, valid) -> np.ndarray:
    """log q(theta | y) of the draws, ``(n, S)``; -inf at invalid draws (a valid placeholder
    stands in for them, so the adapter's support checks pass)."""
    n, s = valid.shape
    zero = {k: np.zeros((1, 1, *model.shapes[k])) for k in model.latent_sites}
    place = model.to_constrained(zero)
    safe = {}
    for k, v in draws.items():
        v = np.asarray(v)
        fill = np.asarray(place[k]).reshape((1, 1) + v.shape[2:])
        safe[k] = np.where(valid.reshape((n, s) + (1,) * (v.ndim - 2)), v, fill)
    out = estimator.log_prob_of_draws(draws=safe, conditions=data)
    return np.where(valid, out, -np.inf)


# -- step 2 ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PsisStep:
    """Per dataset it ran on (in the order given): ``accepted``; ``resampled`` draws
    ``{site: (num_samples, *shape)}`` (None when no proposal had a finite weight);
    ``khat``, ``ess`` (after moment matching where it ran), ``transforms`` (affine maps
    kept by moment matching, NaN where it did not run), ``valid_draws`` (proposals with a
    finite weight), ``self_consistency`` (the spread of the proposals' log weights,
    :func:`~amortized.diagnostics.marginal_likelihood.consistency_spread`: 0 for an exact
    posterior) and ``note`` (why there are no resampled draws, else "")."""

    accepted: np.ndarray
    resampled: list[Draws | None]
    khat: np.ndarray
    ess: np.ndarray
    transforms: np.ndarray
    valid_draws: np.ndarray
    self_consistency: np.ndarray
    note: list[str]


def psis_step(
    estimator,
    target: UnconstrainedTarget,
    data: Mapping[str, np.ndarray],
    draws: Draws,
    log_q: np.ndarray | None,
    *,
    psis_samples: int,
    moment_matching: bool,
    moment_matching_iterations: int,
    draw_seed: int,
    resample_seeds: Sequence[int],
) -> PsisStep:
    """PSIS for every dataset of ``data``: the given amortized ``draws`` ``(n, S, ...)``
    (with their ``log_q``, or None to evaluate it) plus ``psis_samples - S`` fresh ones as
    proposals, weights ``p(y, theta) / q(theta | y)``; where k-hat fails, moment matching
    in the unconstrained space (when ``moment_matching``). Every dataset with a finite
    weight is resampled to ``S`` draws (``resample_seeds``, one per dataset), accepted or
    not: the resampled draws are MCMC's starting points."""
    model = target.model
    n, num_samples = next(iter(draws.values())).shape[:2]
    sub, log_qs = dict(draws), [None]
    extra = psis_samples - num_samples
    if extra:
        fresh, fresh_q = estimator.sample_and_log_prob(
            conditions=data, num_samples=extra, seed=draw_seed
        )
        sub = {k: np.concatenate([v, np.asarray(fresh[k])], axis=1) for k, v in sub.items()}
        log_qs.append(fresh_q)
    # unconstrained once: validity (as in valid_draws) and the space of moment matching
    flat_u = np.asarray(model.flatten(model.to_unconstrained(sub), 2), np.float64)
    sub_valid = np.all(np.isfinite(flat_u), axis=-1)
    if log_q is None:
        log_qs[0] = log_q_of_draws(estimator, model, draws, data, sub_valid[:, :num_samples])
    else:
        log_qs[0] = log_q
    log_q_all = np.where(sub_valid, np.concatenate(log_qs, axis=1), -np.inf)
    lw = importance_log_weights(model.log_joint(sub, data), log_q_all)
    r = psis(lw)
    khat, ess = np.array(r.khat, float), np.array(r.ess, float)
    transforms = np.full(n, np.nan)
    if moment_matching and not r.accepted.all():
        # the proposal density in unconstrained space: log q(T(u)) + log |det J_T(u)|
        safe = np.where(sub_valid[..., None], flat_u, 0.0)
        log_q_u = log_q_all + np.asarray(
            model.log_abs_det_jacobian(model.unflatten(jnp.asarray(safe))), np.float64
        )
    accepted = np.zeros(n, bool)
    resampled: list[Draws | None] = []
    note = [""] * n
    for j in range(n):
        if not np.isfinite(lw[j]).any():
            note[j] = "no amortized draw has a finite importance weight"
            resampled.append(None)
            continue
        u, weights, ok = flat_u[j], r.log_weights[j], bool(r.accepted[j])
        if not ok and moment_matching:
            keep = sub_valid[j] & np.isfinite(log_q_u[j])
            mm = _moment_match(
                target,
                u[keep],
                log_q_u[j][keep],
                one_dataset(data, j),
                psis_samples,
                moment_matching_iterations,
            )
            khat[j], ess[j], transforms[j] = mm.psis.khat[0], mm.psis.ess[0], mm.transforms
            u, weights, ok = mm.draws, mm.psis.log_weights[0], bool(mm.psis.accepted[0])
        idx = resample(np.arange(len(u)), weights, num_samples, seed=resample_seeds[j])
        theta = model.to_constrained(model.unflatten(jnp.asarray(u[idx])))
        resampled.append({k: np.asarray(theta[k]).reshape(draws[k][j].shape) for k in draws})
        accepted[j] = ok
    return PsisStep(
        accepted,
        resampled,
        khat,
        ess,
        transforms,
        np.isfinite(lw).sum(axis=1).astype(float),
        consistency_spread(lw),
        note,
    )


def _moment_match(target, u, log_q_u, data_one, rows: int, iterations: int):
    """Moment matching (:func:`amortized.diagnostics.psis.moment_match`) of one dataset's
    proposals ``u (S, dim)`` in the unconstrained space."""

    def log_target(x):  # padded to a fixed row count: one compilation for all datasets
        pad = np.zeros((rows - len(x), x.shape[1]))
        out = target.densities(jnp.asarray(np.concatenate([x, pad]), jnp.float32), data_one)
        return np.asarray(out, np.float64)[: len(x)]

    return moment_match(u, log_q_u, log_target, iterations)


# -- steps 3 and 4 -----------------------------------------------------------------------
@dataclass(frozen=True)
class McmcStep:
    """Per dataset that got chains (``{dataset: value}``): ``rhat`` (the largest over
    parameters: nested R-hat for ChEES, split R-hat for NUTS), ``ess`` (the smallest bulk
    ESS), ``accepted`` (R-hat below the threshold and ESS at least the minimum) and
    ``draws`` ``{site: (num_samples, *shape)}`` thinned from all chains; ``note``: why a
    dataset got no chains or was not accepted."""

    rhat: dict[int, float]
    ess: dict[int, float]
    accepted: dict[int, bool]
    draws: dict[int, Draws]
    note: dict[int, str]


def starting_points(
    target: UnconstrainedTarget,
    simulator,
    params: Mapping[str, np.ndarray],
    num: int,
    data_one: Mapping[str, jax.Array],
    seed: int,
) -> np.ndarray:
    """``num`` distinct unconstrained starting points ``(num, dim)`` with finite log
    density: the given draws ``{site: (S, *shape)}`` first (in a random order), prior
    draws from ``simulator`` to make up a shortfall."""
    model = target.model

    def finite(u):
        # densities of all rows (a fixed count: the jitted call compiles once), then the
        # distinct usable ones (resampled draws repeat)
        u = np.asarray(u)
        ok = np.all(np.isfinite(u), axis=1)
        safe = jnp.asarray(np.where(ok[:, None], u, 0.0))
        ok &= np.isfinite(np.asarray(target.densities(safe, data_one)))
        return np.unique(u[ok], axis=0)

    order_seed, prior_seed = child_seeds(seed, 2)
    ok = finite(model.flatten(model.to_unconstrained(params), 1))
    ok = ok[np.random.default_rng(order_seed).permutation(len(ok))]
    if len(ok) < num:
        prior = simulator.sample(max(64, 4 * num), seed=prior_seed)
        site = {k: prior[k] for k in model.latent_sites}
        ok = np.concatenate([ok, finite(model.flatten(model.to_unconstrained(site), 1))])
    if len(ok) < num:
        raise ValueError(
            f"{len(ok)} of the amortized and prior draws have a finite log density for this "
            f"dataset; {num} starting points are needed"
        )
    return ok[:num]


def thin(model: DensityModel, chains: np.ndarray, num_samples: int, shapes) -> Draws:
    """``num_samples`` evenly spaced draws of all chains pooled (``(..., dim)``
    unconstrained), constrained, ``{site: (num_samples, *shapes[site])}``."""
    flat = chains.reshape(-1, chains.shape[-1])
    idx = np.linspace(0, len(flat) - 1, num_samples).astype(int)
    theta = model.to_constrained(model.unflatten(jnp.asarray(flat[idx])))
    return {k: np.asarray(theta[k]).reshape((num_samples, *shapes[k])) for k in shapes}


def mcmc_step(
    kind: str,
    target: UnconstrainedTarget,
    simulator,
    data: Mapping[str, np.ndarray],
    starts: Mapping[int, Mapping[str, np.ndarray]],
    *,
    chains: int,
    settings: Mapping[str, Any],
    batch: int,
    rhat_threshold: float,
    min_ess: float,
    start_seeds: Sequence[int],
    chain_seeds: Sequence[int],
    num_samples: int,
) -> McmcStep:
    """ChEES-HMC (``kind="chees"``: ``chains`` superchains, ``settings`` of
    :func:`~amortized.workflow.mcmc.chees_hmc_many`) or NUTS (``chains`` chains, settings
    of :func:`~amortized.workflow.mcmc.nuts_many`) for the datasets ``starts`` ``{dataset:
    {site: (S, *shape)}}`` (indices into ``data``; their draws give the starting points),
    ``batch`` datasets vmapped per compiled call (the last batch padded, so one compilation
    serves all); ``num_samples`` draws are kept per dataset. ``start_seeds`` and
    ``chain_seeds`` are indexed by dataset. A dataset without usable starting points, or a
    batch that fails numerically, gets its reason in ``note`` and no result; the other
    datasets go on."""
    run_many = {"chees": chees_hmc_many, "nuts": nuts_many}[kind]
    note: dict[int, str] = {}
    inits = {}
    for i, p in starts.items():
        try:
            inits[i] = starting_points(
                target, simulator, p, chains, one_dataset(data, i), start_seeds[i]
            )
        except ValueError as e:
            note[i] = f"{kind}: {e}"
    shapes = {k: np.shape(v)[1:] for k, v in next(iter(starts.values())).items()} if starts else {}
    out = McmcStep({}, {}, {}, {}, note)
    order = list(inits)
    if not order:
        return out
    size = min(batch, 1 << (len(order) - 1).bit_length())
    for b in range(0, len(order), size):
        idx = order[b : b + size]
        padded = idx + [idx[-1]] * (size - len(idx))
        init = np.stack([inits[i] for i in padded])
        sub = {k: jnp.asarray(np.asarray(v)[padded]) for k, v in data.items()}
        seeds = [chain_seeds[i] for i in padded]
        try:
            results = run_many(target.density, init, sub, seeds, **settings)
        except (ValueError, FloatingPointError, RuntimeError) as e:
            for i in idx:
                note[i] = f"{kind}: {type(e).__name__}: {e}"
            continue
        for i, res in zip(idx, results[: len(idx)], strict=True):
            out.rhat[i], out.ess[i] = float(np.max(res.rhat)), float(np.min(res.ess))
            out.accepted[i] = bool(np.all(res.rhat < rhat_threshold) and np.all(res.ess >= min_ess))
            out.draws[i] = thin(target.model, res.draws, num_samples, shapes)
            if not out.accepted[i]:
                what = "nested R-hat" if kind == "chees" else "R-hat"
                note[i] = (
                    f"{'ChEES' if kind == 'chees' else 'NUTS'} did not converge (max {what} "
                    f"{out.rhat[i]:.3f}, min ESS {out.ess[i]:.0f})"
                )
    return out


def reference_step(
    estimator, simulator, num_simulations: int, alpha: float, seed: int
) -> SummaryReference:
    """The out-of-distribution reference: the network conditions of ``num_simulations``
    fresh simulations, cut at their ``1 - alpha`` quantile of distances."""
    from ..diagnostics.ood import summary_reference

    sims = simulator.sample(num_simulations, seed=seed)
    return summary_reference(estimator.embed(sims), alpha)


__all__ = [
    "AmortizedStep",
    "McmcStep",
    "PsisStep",
    "UnconstrainedTarget",
    "amortized_step",
    "mcmc_step",
    "psis_step",
    "reference_step",
    "starting_points",
    "thin",
    "valid_draws",
]
