"""Posterior draws by NUTS for a model with a (possibly neural) likelihood.

For each dataset: ``num_chains`` NUTS chains (BlackJAX, window adaptation) on
``log p(y | T(u)) + log p(T(u)) + log |det J_T(u)|`` in the model's unconstrained space,
started at prior draws picked by their likelihood. This is how a neural likelihood
(:class:`~amortized.approximators.NeuralLikelihood`) or a neural ratio becomes a
posterior; for a model with an exact likelihood it is the non-amortized reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._random import child_seeds
from .._validation import check_positive_int, strict
from .mcmc import nuts

#: prior draws per chain among which the chains' starts are picked by their likelihood
STARTS_PER_CHAIN = 50


def _weighted_starts(model, theta, u, data, num: int, seed: int) -> np.ndarray:
    """``num`` distinct rows of ``u`` (prior draws, unconstrained), picked without
    replacement with probabilities proportional to their likelihood (Gumbel top-k): chains
    start where the posterior has mass, in proportion to it across separate modes, instead
    of wherever the prior put them."""
    with jax.numpy_rank_promotion("allow"):  # the user's density, as in the samplers
        log_w = np.asarray(model.log_likelihood(theta, data), np.float64)
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    ok = np.all(np.isfinite(u), axis=1)
    log_w = np.where(ok, log_w, -np.inf)
    if np.sum(np.isfinite(log_w)) < num:
        raise ValueError(
            f"mcmc_posterior: fewer than {num} of {len(u)} prior draws have a finite "
            f"likelihood for a dataset; check the likelihood and the supports"
        )
    gumbel = np.random.default_rng(seed).gumbel(size=len(log_w))
    return u[np.argsort(-(log_w + gumbel))[:num]]


@dataclass(frozen=True)
class McmcPosterior:
    """``draws {site: (num_datasets, num_samples, *shape)}``; per dataset ``rhat``
    ``(num_datasets, dim)`` (split R-hat over chains), ``ess`` ``(num_datasets, dim)``
    (bulk) and ``acceptance`` ``(num_datasets,)``."""

    draws: dict[str, np.ndarray]
    rhat: np.ndarray
    ess: np.ndarray
    acceptance: np.ndarray


@strict
def mcmc_posterior(
    model: Any,
    data: Mapping[str, Any],
    num_samples: int = 1000,
    num_chains: int = 4,
    num_warmup: int = 500,
    seed: int = 0,
) -> McmcPosterior:
    """NUTS draws for every dataset of ``data`` (``{observed: (num_datasets, ...)}``)
    under ``model`` (a ``LikelihoodModel``, ``NumPyroModel`` or
    ``NeuralLikelihood.model(...)``): ``num_chains`` chains of ``ceil(num_samples /
    num_chains)`` draws after ``num_warmup`` adaptation steps; the chains start at distinct
    prior draws picked in proportion to their likelihood (among ``STARTS_PER_CHAIN`` = 50
    per chain), so that separate modes get chains in proportion to their mass; the chains'
    draws are pooled and thinned evenly to ``num_samples``.

    >>> import jax.numpy as jnp
    >>> sim = bf.make_simulator([lambda: {"mu": np.random.normal(size=1)},
    ...                          lambda mu: {"y": np.random.normal(mu, 1.0, size=4)}])
    >>> m = bf.LikelihoodModel(sim, parameters=["mu"], observed="y",
    ...     log_likelihood=lambda p, d: jnp.sum(-0.5 * (d["y"] - p["mu"]) ** 2),
    ...     log_prior=lambda p: jnp.sum(-0.5 * p["mu"] ** 2))
    >>> post = bf.workflow.mcmc_posterior(m, {"y": np.zeros((2, 4))}, num_samples=200,
    ...                                   num_warmup=200, seed=0)
    >>> post.draws["mu"].shape   # exact posterior: N(0, 1/5)
    (2, 200, 1)
    """
    from ..simulators import DensityModel

    if not isinstance(model, DensityModel):
        raise TypeError(
            f"mcmc_posterior: model must have a likelihood (bf.LikelihoodModel, "
            f"bf.NumPyroModel or NeuralLikelihood.model(...)), got {type(model).__name__}"
        )
    num_samples = check_positive_int("mcmc_posterior", "num_samples", num_samples)
    num_chains = check_positive_int("mcmc_posterior", "num_chains", num_chains)
    if num_chains < 2:
        raise ValueError("mcmc_posterior: num_chains must be at least 2 (R-hat needs chains)")
    model.check_data(data, "mcmc_posterior")
    obs = {k: np.asarray(data[k]) for k in model.observed}
    n = len(obs[model.observed[0]])
    s_prior, s_pick, s_chains = child_seeds(int(seed), 3)
    proposals = STARTS_PER_CHAIN * num_chains
    prior = model.simulator.sample(n * proposals, seed=s_prior)
    u0 = np.asarray(model.flatten(model.to_unconstrained(prior), 1)).reshape(n, proposals, -1)
    theta0 = {k: np.asarray(prior[k]).reshape(n, proposals, *np.shape(prior[k])[1:])
              for k in model.latent_sites}  # fmt: skip
    starts = np.stack(
        [
            _weighted_starts(model, {k: v[i] for k, v in theta0.items()}, u0[i],
                             {k: v[i] for k, v in obs.items()}, num_chains, s)
            for i, s in enumerate(child_seeds(s_pick, n))
        ]
    )  # fmt: skip
    per_chain = math.ceil(num_samples / num_chains)

    def density(u, one):
        return model.log_joint_unconstrained(model.unflatten(u), one)

    draws, rhat, ess, acc = [], [], [], []
    for i, s in enumerate(child_seeds(s_chains, n)):
        one = {k: jnp.asarray(v[i]) for k, v in obs.items()}
        res = nuts(density, starts[i], num_warmup, per_chain, seed=s, data=one)
        flat = res.draws.reshape(-1, res.draws.shape[-1])
        keep = np.linspace(0, len(flat) - 1, num_samples).astype(int)
        draws.append(flat[keep])
        rhat.append(res.rhat)
        ess.append(res.ess)
        acc.append(res.acceptance)
    theta = model.to_constrained(model.unflatten(jnp.asarray(np.stack(draws))))
    out = {}
    for k, v in theta.items():
        v = np.asarray(v)
        out[k] = v[..., None] if model.shapes[k] == () else v
    return McmcPosterior(out, np.stack(rhat), np.stack(ess), np.asarray(acc))
