"""Model criticism with a trained workflow: is each observed dataset one the model could have
produced? (Misspecification test in summary space, prior and posterior predictive checks.)

Each function takes a trained :class:`~amortized.workflow.BasicWorkflow` (or a subclass)
with its simulator, simulates what it needs from its own random streams split from
``seed``, and returns the diagnostics as data (:mod:`amortized.diagnostics.misspecification`,
:mod:`amortized.diagnostics.predictive`); the workflow's methods of the same names call
them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._random import stream_seeds
from ..diagnostics.misspecification import MisspecificationTest, misspecification_test
from ..diagnostics.predictive import (
    PredictiveCheck,
    Statistic,
    default_statistics,
    evaluate_statistics,
    posterior_predictive_check,
    prior_predictive_check,
)

STREAMS = ("reference", "null", "prior_predictive", "draws", "replicates")


def _streams(seed: int | None) -> dict[str, int | None]:
    return dict.fromkeys(STREAMS) if seed is None else stream_seeds(seed, STREAMS)


def _observed(where: str, observed: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not isinstance(observed, Mapping) or not observed:
        raise TypeError(
            f"{where}: observed must be a dict of arrays {{name: (num_datasets, ...)}}, got "
            f"{type(observed).__name__}"
        )
    out = {k: np.asarray(v) for k, v in observed.items()}
    lengths = {k: v.shape[0] if v.ndim else None for k, v in out.items()}
    if len(set(lengths.values())) != 1 or None in lengths.values():
        raise ValueError(
            f"{where}: every observed array needs the same leading number of datasets, got "
            f"leading lengths {lengths}"
        )
    return out


def _simulations(workflow, n: int, seed) -> dict[str, np.ndarray]:
    """``n`` simulations as training saw them (a meta_fn's sizes varied, padded)."""
    workflow._require_simulator("model criticism")
    return workflow._simulate_for_training(n, seed, 64)


def misspecification(
    workflow,
    observed: Mapping[str, Any],
    *,
    num_reference: int = 2000,
    num_null: int = 1000,
    alpha: float = 0.05,
    batch: bool = False,
    seed: int | None = None,
) -> MisspecificationTest:
    """Test each observed dataset (or, ``batch=True``, all together) against simulations
    in the space of what the networks condition on (the learned summaries and direct
    conditions, ``approximator.embed``): ``num_reference`` simulations form the reference,
    ``num_null`` others the null distribution
    (:func:`~amortized.diagnostics.misspecification.misspecification_test`)."""
    obs = _observed("misspecification_test", observed)
    s = _streams(seed)
    embed = workflow.approximator.embed
    ref = embed(_simulations(workflow, int(num_reference), s["reference"]))
    null = embed(_simulations(workflow, int(num_null), s["null"]))
    return misspecification_test(
        embed(obs), ref, null, alpha=alpha, batch=batch, seed=0 if seed is None else seed
    )


def _statistics(where, statistics, example) -> dict[str, Statistic]:
    if statistics is None:
        return default_statistics(example)
    if not isinstance(statistics, Mapping) or not statistics:
        raise TypeError(
            f"{where}: statistics must be a dict {{name: f(data) -> (num_datasets,)}}, got "
            f"{type(statistics).__name__}"
        )
    bad = [k for k, f in statistics.items() if not callable(f)]
    if bad:
        raise TypeError(f"{where}: statistics {bad} are not callable")
    return dict(statistics)


def prior_predictive(
    workflow,
    observed: Mapping[str, Any] | None = None,
    *,
    statistics: Mapping[str, Statistic] | None = None,
    num_simulations: int = 1000,
    alpha: float = 0.05,
    seed: int | None = None,
) -> PredictiveCheck:
    """Statistics of ``num_simulations`` prior predictive simulations, and of each observed
    dataset with its p-value ``P(T(y_rep) >= T(y))``. Default statistics: those of
    :func:`~amortized.diagnostics.predictive.default_statistics` for the observed
    variables (without ``observed``: for the simulator's outputs that reach the
    networks). Without ``observed`` the check has no datasets (``observed`` ``(0, k)``)."""
    where = "prior_predictive"
    sims = _simulations(workflow, int(num_simulations), _streams(seed)["prior_predictive"])
    if observed is not None:
        obs = _observed(where, observed)
        missing = sorted(set(obs) - set(sims))
        if missing:
            raise KeyError(
                f"{where}: observed variables {missing} are not simulator outputs; outputs: "
                f"{sorted(sims)}"
            )
        example = obs
    else:
        from ..adapters.usage import head_rows, key_routes

        routes = key_routes(workflow.adapter, head_rows(sims))
        example = {
            k: v
            for k, v in sims.items()
            if routes.get(k) and "inference_variables" not in routes[k] and k != "mask"
        }
    stats = _statistics(where, statistics, example)
    rep = evaluate_statistics(stats, sims, f"{where} (simulations)")
    obs_stats = (
        np.zeros((0, len(stats)))
        if observed is None
        else evaluate_statistics(stats, obs, f"{where} (observed)")
    )
    return prior_predictive_check(rep, obs_stats, list(stats), alpha)


def posterior_predictive(
    workflow,
    observed: Mapping[str, Any],
    *,
    statistics: Mapping[str, Statistic] | None = None,
    num_samples: int = 200,
    keep: str | Sequence[str] = (),
    alpha: float = 0.05,
    seed: int | None = None,
) -> PredictiveCheck:
    """For each observed dataset: ``num_samples`` posterior draws, the simulator run at
    each (``y_rep ~ p(y | theta_s)``), and per statistic the p-value
    ``P(T(y_rep) >= T(y) | y)``. ``keep``: observed variables held at their observed values
    in the replicates (covariates, designs, sizes) rather than simulated anew. Default
    statistics: :func:`~amortized.diagnostics.predictive.default_statistics` of the
    replicated variables."""
    where = "posterior_predictive"
    obs = _observed(where, observed)
    keep = [keep] if isinstance(keep, str) else list(keep)
    unknown = [k for k in keep if k not in obs]
    if unknown:
        raise KeyError(f"{where}: keep names {unknown}, not observed; observed: {sorted(obs)}")
    sim = workflow._require_simulator(where)
    s = _streams(seed)
    n, num = len(next(iter(obs.values()))), int(num_samples)
    draws = workflow.sample(num_samples=num, conditions=obs, seed=s["draws"], progress=False)
    fixed = {k: np.asarray(v) for k, v in draws.items()}
    for k in keep:
        fixed[k] = np.broadcast_to(obs[k][:, None], (n, num) + obs[k].shape[1:])
    reps = sim.sample((n, num), seed=s["replicates"], **fixed)
    replicated = {k: obs[k] for k in obs if k not in keep}
    missing = sorted(set(replicated) - set(reps))
    if missing:
        raise KeyError(
            f"{where}: observed variables {missing} are not simulator outputs (list "
            f"covariates in keep=); outputs: {sorted(reps)}"
        )
    stats = _statistics(where, statistics, replicated)
    flat = {
        k: v.reshape((n * num,) + v.shape[2:])
        for k, v in reps.items()
        if np.ndim(v) >= 2 and np.shape(v)[:2] == (n, num)
    }
    rep = evaluate_statistics(stats, flat, f"{where} (replicates)").reshape(n, num, -1)
    obs_stats = evaluate_statistics(stats, obs, f"{where} (observed)")
    return posterior_predictive_check(rep, obs_stats, list(stats), alpha)


#: the report's figures of observed data (fixed names), with what each shows
EXPLANATIONS = {
    "misspecification": "Misspecification test in summary space: the distribution of the "
    "MMD between one simulated dataset's summaries and the simulations' (histogram, the "
    "null), its critical value, and each observed dataset's MMD (ticks; red: out of "
    "simulation at the test's level).",
    "prior_predictive": "Prior predictive check: each statistic of simulations from the "
    "prior predictive (histogram) and of the observed datasets (lines; red: in an alpha/2 "
    "tail). Observed values far in a tail mean the prior and observation model cannot "
    "produce such data.",
    "posterior_predictive": "Posterior predictive check: per statistic, the observed "
    "datasets' posterior predictive p-values P(T(y_rep) >= T(y) | y). A statistic the "
    "model reproduces gives p-values spread over (0, 1) (uniform when the posterior does not "
    "fit that statistic); p-values piled at 0 or 1 mean it does not reproduce it.",
}


def _indices(mask) -> list[int]:
    return np.flatnonzero(mask).tolist()


def _listed(idx: list[int]) -> str:
    return ", ".join(map(str, idx[:20])) + (", ..." if len(idx) > 20 else "")


def observed_report(
    workflow,
    observed: Mapping[str, Any],
    keep: str | Sequence[str] = (),
    alpha: float = 0.05,
    seed: int | None = None,
) -> tuple[dict, dict, dict, list[str]]:
    """What a report adds for observed datasets: the figures (:data:`EXPLANATIONS`), their
    report entries, the summary ``{"num_datasets", "misspecification_p",
    "misspecification_flagged", "prior_predictive_flagged", "posterior_predictive_flagged",
    "posterior_predictive_statistics"}`` (dataset indices) and the next steps they imply."""
    from ..diagnostics import plots

    names = ("misspecification", "prior_predictive", "posterior_predictive")
    s = dict.fromkeys(names) if seed is None else stream_seeds(seed, names)
    mt = misspecification(workflow, observed, alpha=alpha, seed=s["misspecification"])
    pri = prior_predictive(workflow, observed, alpha=alpha, seed=s["prior_predictive"])
    post = posterior_predictive(
        workflow, observed, keep=keep, alpha=alpha, seed=s["posterior_predictive"]
    )
    n = len(mt.p_value)
    out_sim = _indices(mt.flagged)
    pri_bad, post_bad = _indices(pri.flagged_datasets), _indices(post.flagged_datasets)
    figs = {
        "misspecification": plots.mmd_hypothesis_test(mt.null, mt.statistic, alpha),
        "prior_predictive": plots.predictive_check(pri),
        "posterior_predictive": plots.predictive_check(post),
    }

    def verdict(idx, what):
        return f"{len(idx)} of {n} observed datasets {what}" + (
            f" (indices {_listed(idx)})" if idx else ""
        )

    worst = {
        name: int(post.flagged[:, j].sum()) for j, name in enumerate(post.names)
    }  # statistic -> datasets flagged
    assessments = {
        "misspecification": verdict(out_sim, f"out of simulation at alpha {alpha:g}"),
        "prior_predictive": verdict(pri_bad, "in a tail of the prior predictive"),
        "posterior_predictive": verdict(post_bad, "with a statistic the model does not reproduce")
        + (
            "; per statistic: " + ", ".join(f"{k}: {v}" for k, v in worst.items() if v)
            if post_bad
            else ""
        ),
    }
    entries = {
        k: {"file": f"{k}.png", "explanation": EXPLANATIONS[k], "assessment": assessments[k]}
        for k in names
    }
    summary = {
        "num_datasets": n,
        "misspecification_p": mt.p_value.tolist(),
        "misspecification_flagged": out_sim,
        "prior_predictive_flagged": pri_bad,
        "posterior_predictive_flagged": post_bad,
        "posterior_predictive_statistics": worst,
    }
    steps = []
    if out_sim:
        steps.append(
            f"Observed datasets {_listed(out_sim)} are out of simulation (the misspecification "
            f"test rejects them): the model cannot produce data like them, and the network's "
            f"posterior there is an extrapolation. Revise the model (noise, outliers, "
            f"structure) before trusting their posteriors."
        )
    if post_bad:
        bad_stats = [k for k, v in worst.items() if v]
        steps.append(
            f"The fitted model does not reproduce {bad_stats} of observed datasets "
            f"{_listed(post_bad)} (posterior predictive p-values in a tail): extend the "
            f"observation model where these statistics point."
        )
    return figs, entries, summary, steps


def marginal_likelihood(
    workflow,
    model,
    observed: Mapping[str, Any],
    *,
    num_samples: int = 2000,
    seed: int | None = None,
):
    """log p(y) of each observed dataset from ``num_samples`` amortized draws and the
    model's own densities, with its standard error and the self-consistency spread
    (:func:`~amortized.diagnostics.marginal_likelihood.marginal_likelihood_from_draws`).
    ``workflow``: a trained workflow or estimator with a density; ``model``: the
    ``NumPyroModel`` / ``LikelihoodModel`` whose posterior it approximates."""
    from ..approximators.protocol import density_estimator
    from ..diagnostics.marginal_likelihood import marginal_likelihood_from_draws
    from ..simulators._density_model import DensityModel

    where = "marginal_likelihood"
    if not isinstance(model, DensityModel):
        raise TypeError(
            f"{where}: needs the model's likelihood: a bf.NumPyroModel or bf.LikelihoodModel, "
            f"got {type(model).__name__} (a simulator alone has no density)"
        )
    estimator = density_estimator(workflow, where)
    caveat = estimator.log_prob_caveat
    if caveat is not None:
        raise ValueError(
            f"{where}: the estimate divides by the approximator's density of its draws, and "
            f"its log q is not exact: {caveat}"
        )
    obs = _observed(where, observed)
    model.check_data(obs, where)
    data = {k: obs[k] for k in model.observed}
    draws, log_q = estimator.sample_and_log_prob(
        conditions=obs, num_samples=int(num_samples), seed=seed, progress=False
    )
    missing = [k for k in model.latent_sites if k not in draws]
    if missing:
        raise KeyError(
            f"{where}: the approximator draws {sorted(draws)}, the model's latent sites are "
            f"{list(model.latent_sites)} (missing {missing})"
        )
    params = {k: np.asarray(draws[k]) for k in model.latent_sites}
    log_joint = np.asarray(model.log_joint(params, data), np.float64)
    return marginal_likelihood_from_draws(log_joint, np.asarray(log_q, np.float64), where)
