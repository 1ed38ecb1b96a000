"""Posterior draws by NUTS for a model with a (possibly neural) likelihood.

For each dataset: ``num_chains`` NUTS chains (BlackJAX, window adaptation) on
``log p(y | T(u)) + log p(T(u)) + log |det J_T(u)|`` in the model's unconstrained space,
started from prior draws. This is how a neural likelihood
(:class:`~amortized.approximators.NeuralLikelihood`) or a neural ratio becomes a
posterior; for a model with an exact likelihood it is the non-amortized reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

from .._random import child_seeds
from .._validation import check_positive_int, strict
from .mcmc import nuts


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
    num_chains)`` draws after ``num_warmup`` adaptation steps, from prior draws; the
    chains' draws are pooled and thinned evenly to ``num_samples``.

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
    s_starts, s_chains = child_seeds(int(seed), 2)
    prior = model.simulator.sample(n * num_chains, seed=s_starts)
    u0 = model.flatten(model.to_unconstrained(prior), 1)
    starts = np.asarray(u0).reshape(n, num_chains, -1)
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
