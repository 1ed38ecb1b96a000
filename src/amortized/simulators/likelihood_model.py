"""A simulator plus JAX log densities: the model specification for users whose simulator is
plain NumPy (or anything else) but who can write the likelihood.

``LikelihoodModel(simulator, log_likelihood, log_prior, parameters, observed, supports)``
gives what :class:`~amortized.workflow.AmortizedBayesianWorkflow` needs, as
:class:`NumPyroModel` does: ``log_prior``, ``log_likelihood``, ``log_joint`` over datasets
and draws, and the unconstrained space ``u = T^{-1}(theta)`` (T maps the real line onto each
parameter's support) with ``log_joint_unconstrained(u, y) = log p(y | T(u)) + log p(T(u))
+ log |det J_T(u)|``.

``log_likelihood(params, data)`` and ``log_prior(params)`` take one draw and one dataset:
``params = {name: array of the parameter's shape}``, ``data = {observed: array of one
dataset's shape}``, shapes as the simulator returns them for one draw; they return a scalar
and must be written in ``jax.numpy`` (they are vmapped and differentiated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import strict
from ._density_model import DensityModel
from .simulator import Simulator


def _support(name: str, bounds: Any):
    """``None`` (the real line) or ``(lower, upper)`` with ``None`` for an open side, as a
    NumPyro constraint."""
    from numpyro.distributions import constraints

    if bounds is None:
        return constraints.real
    if not isinstance(bounds, Sequence) or len(bounds) != 2:
        raise ValueError(
            f"LikelihoodModel: supports[{name!r}] must be None or (lower, upper) with None for "
            f"an open side, got {bounds!r}"
        )
    lo, hi = bounds
    if lo is None and hi is None:
        return constraints.real
    if hi is None:
        return constraints.greater_than(float(lo))
    if lo is None:
        return constraints.less_than(float(hi))
    if not float(lo) < float(hi):
        raise ValueError(f"LikelihoodModel: supports[{name!r}] needs lower < upper, got {bounds}")
    return constraints.interval(float(lo), float(hi))


class LikelihoodModel(DensityModel):
    """A :class:`~amortized.simulators.Simulator` with JAX log densities.

    Parameters
    ----------
    simulator : Simulator
        Draws the parameters and the observed data (e.g. from ``bf.make_simulator``).
    log_likelihood : callable
        ``log_likelihood(params, data) -> scalar`` for one draw and one dataset (JAX).
    log_prior : callable
        ``log_prior(params) -> scalar`` (JAX), the density of the simulator's prior.
    parameters : sequence of str
        The parameters (keys of the simulator's output).
    observed : str or sequence of str
        The observed data keys.
    supports : dict, optional
        ``{parameter: (lower, upper)}`` with ``None`` for an open side; parameters not
        listed live on the real line.

    >>> import jax.numpy as jnp, numpy as np
    >>> from amortized.simulators import make_simulator
    >>> sim = make_simulator([lambda: {"mu": np.random.normal(size=1)},
    ...                       lambda mu: {"y": np.random.normal(mu, 1.0, size=10)}])
    >>> m = LikelihoodModel(
    ...     sim,
    ...     log_likelihood=lambda p, d: jnp.sum(-0.5 * (d["y"] - p["mu"]) ** 2),
    ...     log_prior=lambda p: jnp.sum(-0.5 * p["mu"] ** 2),
    ...     parameters=["mu"], observed="y")
    """

    @strict
    def __init__(
        self,
        simulator: Simulator,
        log_likelihood: Callable[..., Any],
        log_prior: Callable[..., Any],
        parameters: Sequence[str],
        observed: str | Sequence[str],
        supports: Mapping[str, Any] | None = None,
    ):
        if not isinstance(simulator, Simulator):
            raise TypeError(
                f"LikelihoodModel: simulator must be a bf.simulators.Simulator (e.g. from "
                f"bf.make_simulator), got {type(simulator).__name__}"
            )
        for name, fn in (("log_likelihood", log_likelihood), ("log_prior", log_prior)):
            if not callable(fn):
                raise TypeError(f"LikelihoodModel: {name} must be callable, got {fn!r}")
        self._simulator = simulator
        self._log_likelihood, self._log_prior = log_likelihood, log_prior
        self.latent_sites = (parameters,) if isinstance(parameters, str) else tuple(parameters)
        self.observed = (observed,) if isinstance(observed, str) else tuple(observed)
        if not self.latent_sites:
            raise ValueError("LikelihoodModel: parameters is empty")
        supports = dict(supports or {})
        unknown = sorted(set(supports) - set(self.latent_sites))
        if unknown:
            raise KeyError(
                f"LikelihoodModel: supports name {unknown}, which are not parameters; "
                f"parameters: {list(self.latent_sites)}"
            )
        probe = simulator.sample(2, seed=0)
        absent = [k for k in (*self.latent_sites, *self.observed) if k not in probe]
        if absent:
            raise KeyError(
                f"LikelihoodModel: the simulator does not output {absent}; it outputs "
                f"{sorted(probe)}"
            )
        self.shapes = {
            k: tuple(np.shape(probe[k])[1:]) for k in (*self.latent_sites, *self.observed)
        }
        self.supports = {n: _support(n, supports.get(n)) for n in self.latent_sites}

    @property
    def simulator(self) -> Simulator:
        return self._simulator

    def _parts_one(self, params, data):
        prior = self._log_prior(dict(params))
        lik = self._log_likelihood(dict(params), dict(data)) if data else 0.0
        return prior, lik
