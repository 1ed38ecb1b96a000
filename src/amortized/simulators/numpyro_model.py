"""A NumPyro model as the model specification: one program gives the simulator for training
and the log densities for importance sampling and MCMC.

``NumPyroModel(model, observed="y")`` wraps ``model(**model_kwargs, y=None)``:

- ``simulator``: prior predictive draws of every latent site and of the observed site(s),
  batched (a :class:`~amortized.simulators.Simulator`);
- ``log_prior(params)``, ``log_likelihood(params, data)``: sums of the sites' log densities
  in the original (constrained) space; ``log_joint`` their sum;
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

import jax
import jax.numpy as jnp
import numpy as np

from .simulator import Simulator, make_simulator


def _trace(model, kwargs, params=None, seed=0):
    from numpyro import handlers

    m = handlers.seed(model, rng_seed=seed)
    if params is not None:
        m = handlers.substitute(m, data=params)
    return handlers.trace(m).get_trace(**kwargs)


class NumPyroModel:
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

    # -- densities ---------------------------------------------------------------------
    def _check(self, params: Mapping[str, Any]):
        missing = [k for k in self.latent_sites if k not in params]
        if missing:
            raise KeyError(
                f"NumPyroModel: params lack latent site(s) {missing}; got {sorted(params)}"
            )

    def _site_array(self, name: str, value) -> jax.Array:
        """A scalar site arrives as ``(..., 1)`` from simulators and samplers: drop that axis."""
        a = jnp.asarray(value)
        if self.shapes[name] == () and a.ndim >= 1 and a.shape[-1] == 1:
            a = a[..., 0]
        return a

    def _lead(self, params) -> tuple[int, ...]:
        name = self.latent_sites[0]
        a = jnp.asarray(params[name])
        nd = a.ndim - len(self.shapes[name])
        if nd < 0:
            raise ValueError(
                f"NumPyroModel: params[{name!r}] has shape {a.shape}; the site's shape is "
                f"{self.shapes[name]}"
            )
        return a.shape[:nd]

    def _parts_one(self, params, data):
        tr = _trace(self.model, {**self.model_kwargs, **data}, params=params)
        prior = sum(jnp.sum(tr[n]["fn"].log_prob(tr[n]["value"])) for n in self.latent_sites)
        lik = sum(jnp.sum(tr[n]["fn"].log_prob(tr[n]["value"])) for n in self.observed)
        return prior, lik

    def _map(self, fn, params, data):
        """Apply ``fn(params_one, data_one)`` over the leading axes: params ``(*P, ...)``,
        data ``(*D, ...)`` with ``D`` a prefix of ``P`` (datasets, then draws)."""
        self._check(params)
        params = {k: self._site_array(k, params[k]) for k in self.latent_sites}
        lead = self._lead(params)
        data = {} if data is None else {k: self._site_array(k, data[k]) for k in self.observed}
        data_nd = 0
        if data:
            k0 = self.observed[0]
            data_nd = data[k0].ndim - len(self.shapes[k0])
            if lead[:data_nd] != data[k0].shape[:data_nd]:
                raise ValueError(
                    f"NumPyroModel: data[{k0!r}] has leading shape {data[k0].shape[:data_nd]}, "
                    f"params lead with {lead}; datasets must come first in both"
                )
        f = fn
        for _ in range(len(lead) - data_nd):  # draws: params mapped, data shared
            f = jax.vmap(f, in_axes=(0, None))
        for _ in range(data_nd):  # datasets: both mapped
            f = jax.vmap(f, in_axes=(0, 0))
        return f(params, data)

    def log_prior(self, params: Mapping[str, Any]) -> jax.Array:
        """``log p(theta)`` in the constrained space, shape: the params' leading axes."""
        return self._map(lambda p, d: self._parts_one(p, d)[0], params, None)

    def log_likelihood(self, params: Mapping[str, Any], data: Mapping[str, Any]) -> jax.Array:
        """``log p(y | theta)``; ``data`` ``{observed: (*datasets, *shape)}``."""
        return self._map(lambda p, d: self._parts_one(p, d)[1], params, data)

    def log_joint(self, params: Mapping[str, Any], data: Mapping[str, Any]) -> jax.Array:
        return self._map(lambda p, d: sum(self._parts_one(p, d)), params, data)

    # -- unconstrained space -----------------------------------------------------------
    def _bijections(self):
        from numpyro.distributions.transforms import biject_to

        return {n: biject_to(self.supports[n]) for n in self.latent_sites}

    def to_unconstrained(self, params: Mapping[str, Any]) -> dict[str, jax.Array]:
        self._check(params)
        t = self._bijections()
        return {n: t[n].inv(self._site_array(n, params[n])) for n in self.latent_sites}

    def to_constrained(self, params_u: Mapping[str, Any]) -> dict[str, jax.Array]:
        self._check(params_u)
        t = self._bijections()
        return {n: t[n](self._site_array(n, params_u[n])) for n in self.latent_sites}

    def log_joint_unconstrained(
        self, params_u: Mapping[str, Any], data: Mapping[str, Any]
    ) -> jax.Array:
        """``log p(y | T(u)) + log p(T(u)) + log |det J_T(u)|``: the density of the
        unconstrained parameters, for MCMC."""
        t = self._bijections()

        def one(u, d):
            theta = {n: t[n](u[n]) for n in self.latent_sites}
            jac = sum(jnp.sum(t[n].log_abs_det_jacobian(u[n], theta[n])) for n in self.latent_sites)
            return sum(self._parts_one(theta, d)) + jac

        return self._map(one, params_u, data)

    # -- adapter -----------------------------------------------------------------------
    def default_adapter(self, observed_as: str = "inference_conditions"):
        """Latent sites (constrained by their supports) into ``inference_variables``; the
        observed site(s) into ``observed_as`` (``"inference_conditions"`` or
        ``"summary_variables"``)."""
        from numpyro.distributions import constraints

        from ..adapters import Adapter

        a = Adapter().convert_dtype("float64", "float32")
        for n in self.latent_sites:
            c = self.supports[n]
            base = getattr(c, "base_constraint", c)
            if base is constraints.real:
                continue
            lo = getattr(base, "lower_bound", None)
            hi = getattr(base, "upper_bound", None)
            if base is constraints.positive or (lo is not None and hi is None):
                a = a.constrain(n, lower=float(lo) if lo is not None else 0.0)
            elif lo is not None and hi is not None:
                a = a.constrain(n, lower=float(lo), upper=float(hi))
            else:
                raise ValueError(
                    f"NumPyroModel.default_adapter: site {n!r} has support {c}; write the "
                    f"adapter by hand for it"
                )
        a = a.concatenate(list(self.latent_sites), into="inference_variables")
        obs = list(self.observed)
        return (
            a.concatenate(obs, into=observed_as)
            if len(obs) > 1 or observed_as == ("inference_conditions")
            else a.rename(obs[0], observed_as)
        )
