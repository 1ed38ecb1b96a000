"""What the amortized Bayesian workflow needs of a model beyond simulations: log densities
of parameters and data, and one unconstrained space in which importance weights and MCMC
live. Subclasses (:class:`NumPyroModel`, :class:`LikelihoodModel`) give ``latent_sites``,
``observed``, ``shapes``, ``supports`` (NumPyro constraints), ``simulator`` and
``_parts_one(params, data) -> (log prior, log likelihood)`` for one draw and one dataset;
this base maps that over draws and datasets and adds the bijections.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class DensityModel:
    """Base of models with a likelihood (see the module docstring)."""

    latent_sites: tuple[str, ...]
    observed: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    supports: dict[str, Any]

    def _parts_one(self, params, data):  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, batch_shape, seed: int | None = None, **fixed: Any) -> dict[str, Any]:
        """Prior predictive draws, as a simulator's ``sample`` gives them (see
        :meth:`amortized.simulators.Simulator.sample`)."""
        return self.simulator.sample(batch_shape, seed=seed, **fixed)

    # -- densities ---------------------------------------------------------------------
    def _check(self, params: Mapping[str, Any]):
        missing = [k for k in self.latent_sites if k not in params]
        if missing:
            raise KeyError(
                f"{type(self).__name__}: params lack latent site(s) {missing}; got {sorted(params)}"
            )

    def check_data(self, data: Mapping[str, Any], where: str) -> None:
        """Raise unless ``data`` holds every observed site with trailing shape equal to the
        site's shape (a scalar site may carry a trailing axis of 1)."""
        missing = [k for k in self.observed if k not in data]
        if missing:
            raise KeyError(f"{where}: data lack observed site(s) {missing}; got {sorted(data)}")
        for k in self.observed:
            shape, want = np.shape(data[k]), self.shapes[k]
            trailing = shape[len(shape) - len(want) :] if want else ()
            if want == () and shape[-1:] == (1,):
                continue
            if len(shape) <= len(want) or trailing != want:
                raise ValueError(
                    f"{where}: data[{k!r}] has shape {shape}; expected (num_datasets, *{want}) "
                    f"as the model simulates it"
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
                f"{type(self).__name__}: params[{name!r}] has shape {a.shape}; the site's shape is "
                f"{self.shapes[name]}"
            )
        return a.shape[:nd]

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
                    f"{type(self).__name__}: data[{k0!r}] has leading shape "
                    f"{data[k0].shape[:data_nd]}, params lead with {lead}; datasets must come "
                    f"first in both"
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

    # -- flat vectors ------------------------------------------------------------------
    def flatten(self, params: Mapping[str, Any], lead: int) -> jax.Array:
        """The latent sites of ``params`` (each ``(*lead, *shape)``) side by side in one
        vector per draw, ``(*lead, dim)``, in ``latent_sites`` order (what samplers move)."""
        parts = [
            jnp.reshape(jnp.asarray(params[n]), np.shape(params[n])[:lead] + (-1,))
            for n in self.latent_sites
        ]
        return jnp.concatenate(parts, axis=-1)

    def unflatten(self, vec: jax.Array) -> dict[str, jax.Array]:
        """The inverse of :meth:`flatten`: ``(..., dim)`` -> ``{site: (..., *shape)}``."""
        out, i = {}, 0
        for n in self.latent_sites:
            shape = self.shapes[n]
            size = int(np.prod(shape))
            out[n] = vec[..., i : i + size].reshape(vec.shape[:-1] + shape)
            i += size
        return out

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
            return sum(self._parts_one(theta, d)) + self._log_jac_one(u, theta)

        return self._map(one, params_u, data)

    def _log_jac_one(self, u, theta):
        t = self._bijections()
        return sum(jnp.sum(t[n].log_abs_det_jacobian(u[n], theta[n])) for n in self.latent_sites)

    def log_abs_det_jacobian(self, params_u: Mapping[str, Any]) -> jax.Array:
        """``log |det J_T(u)|`` of the constraining map ``theta = T(u)``, ``(*draws,)``: a
        density ``q(theta)`` becomes ``q(T(u)) |det J_T(u)|`` in unconstrained space."""
        t = self._bijections()

        def one(u, _):
            return self._log_jac_one(u, {n: t[n](u[n]) for n in self.latent_sites})

        return self._map(one, params_u, None)

    # -- adapter -----------------------------------------------------------------------
    def default_adapter(self, observed_as: str = "inference_conditions"):
        """Latent sites (constrained by their supports) into ``inference_variables``; the
        observed site(s) into ``observed_as``: ``"inference_conditions"`` (flattened side by
        side) or ``"summary_variables"`` (as a set for a summary network such as
        ``SetTransformer``: a site of shape ``(batch, N)``, N observations along a plate,
        becomes ``(batch, N, 1)``, and several sites on the same plate are the columns of
        one set)."""
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
                    f"{type(self).__name__}.default_adapter: site {n!r} has support {c}; write the "
                    f"adapter by hand for it"
                )
        a = a.concatenate(list(self.latent_sites), into="inference_variables")
        obs = list(self.observed)
        if observed_as == "summary_variables":
            a = a.as_set(obs)
        return (
            a.concatenate(obs, into=observed_as)
            if len(obs) > 1 or observed_as == ("inference_conditions")
            else a.rename(obs[0], observed_as)
        )
