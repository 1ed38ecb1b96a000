"""A NumPyro model as the model specification: one program gives the simulator for training
and the log densities for importance sampling and MCMC.

``NumPyroModel(model, observed="y")`` wraps ``model(**model_kwargs, y=None)``:

- ``simulator``: prior predictive draws of every latent site and of the observed site(s),
  batched (a :class:`~amortized.simulators.Simulator`);
- ``log_prior(params)``, ``log_likelihood(params, data)``: sums of the sites' log densities
  in the original (constrained) space, as NumPyro computes them (masks and scales applied);
  the likelihood holds every term that is not the prior of a latent site (observed sites,
  ``numpyro.factor`` terms), so ``log_joint``, their sum, equals
  ``numpyro.infer.util.log_density``;
- ``to_unconstrained`` / ``to_constrained`` with NumPyro's bijections to each site's support,
  and ``log_joint_unconstrained(u, data)`` = log p(y | T(u)) + log p(T(u)) + log |det J_T(u)|,
  the density MCMC samples in unconstrained space;
- ``default_adapter()``: the latent sites concatenated into ``inference_variables`` with
  ``constrain`` for bounded supports, the observed site(s) as conditions.

Parameters are dicts ``{site: (..., *site_shape)}`` with any leading batch axes; data are
``{observed_site: (..., *shape)}`` with the dataset axes leading.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._density_model import DensityModel
from .simulator import Simulator, make_simulator


def _trace(model, kwargs, params=None, seed=0):
    from numpyro import handlers

    m = handlers.seed(model, rng_seed=seed)
    if params is not None:
        m = handlers.substitute(m, data=params)
    return handlers.trace(m).get_trace(**kwargs)


class NumPyroModel(DensityModel):
    """See the module docstring.

    >>> import numpyro, numpyro.distributions as dist
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0, 1))
    ...     sigma = numpyro.sample("sigma", dist.HalfNormal(1))
    ...     with numpyro.plate("n", 10):
    ...         numpyro.sample("y", dist.Normal(mu, sigma), obs=y)
    >>> m = NumPyroModel(model, observed="y")
    >>> m.latent_sites
    ('mu', 'sigma')
    """

    def __init__(
        self,
        model: Callable,
        observed: str | Sequence[str],
        model_kwargs: Mapping[str, Any] | None = None,
    ):
        if not callable(model):
            raise TypeError(f"NumPyroModel: model must be callable, got {type(model).__name__}")
        self.model = model
        self.observed = (observed,) if isinstance(observed, str) else tuple(observed)
        self.model_kwargs = dict(model_kwargs or {})
        params = inspect.signature(model).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            absent = [k for k in (*self.observed, *self.model_kwargs) if k not in params]
            if absent:
                raise KeyError(
                    f"NumPyroModel: {absent} are not sample sites / arguments of the model; "
                    f"its arguments are {list(params)} (observed sites are passed by name)"
                )
        tr = _trace(model, {**self.model_kwargs, **{k: None for k in self.observed}})
        sites = {n: s for n, s in tr.items() if s["type"] == "sample"}
        missing = [k for k in self.observed if k not in sites]
        if missing:
            raise KeyError(
                f"NumPyroModel: observed site(s) {missing} are not sample sites of the model; "
                f"sample sites: {sorted(sites)}"
            )
        self.latent_sites = tuple(
            n for n, s in sites.items() if n not in self.observed and not s["is_observed"]
        )
        if not self.latent_sites:
            raise ValueError("NumPyroModel: the model has no latent sample sites")
        self.shapes = {n: tuple(np.shape(sites[n]["value"])) for n in sites}
        self.supports = {n: sites[n]["fn"].support for n in self.latent_sites}

    # -- simulation --------------------------------------------------------------------
    @property
    def simulator(self) -> Simulator:
        """Batched prior predictive simulator of the latent and observed sites."""
        from numpyro.infer import Predictive

        keep = self.latent_sites + self.observed
        kwargs = {**self.model_kwargs, **{k: None for k in self.observed}}

        def prior_predictive(batch_size, key):
            draws = Predictive(self.model, num_samples=batch_size)(key, **kwargs)
            return {k: np.asarray(draws[k], np.float64) for k in keep}

        return make_simulator([prior_predictive], is_batched=True)

    def _parts_one(self, params, data):
        """``(log prior, everything else)`` for one draw and one dataset, from NumPyro's own
        per-site densities (:func:`numpyro.infer.util.compute_log_probs`), so that masks,
        plate and ``handlers.scale`` factors, ``numpyro.factor`` terms and observed sites not
        listed in ``observed`` all count: the second part is the joint less the prior of the
        latent sites, i.e. the likelihood with every extra term of the model."""
        from numpyro import handlers
        from numpyro.infer.util import compute_log_probs

        seeded = handlers.seed(self.model, rng_seed=0)
        per_site, _ = compute_log_probs(seeded, (), {**self.model_kwargs, **data}, params)
        prior = sum((per_site[n] for n in self.latent_sites), start=jnp.zeros(()))
        rest = sum(
            (v for n, v in per_site.items() if n not in self.latent_sites), start=jnp.zeros(())
        )
        return prior, rest
