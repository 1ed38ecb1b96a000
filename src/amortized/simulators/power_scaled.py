"""A model whose prior is raised to a power drawn per simulation: one network trained on
it gives the posterior under ``p(theta)^gamma p(y | theta)`` for every ``gamma`` in the
range at once (Elsemüller et al. 2024, "Sensitivity-aware amortized Bayesian inference").

``PowerScaledModel(model, gamma=(0.5, 2.0))`` draws ``log gamma ~ Uniform(log lo, log hi)``
(log-uniform: ``gamma`` and ``1 / gamma`` are equally likely for a symmetric range), then
the latent sites from the powered prior and the observed sites from the unchanged
likelihood. ``gamma`` is a *context variable*: a simulator output ``"prior_power"`` that
describes the analysis, not the data; the default adapter passes ``log(prior_power)`` to
the inference network as a condition, and at inference the analyst sets it.

- A :class:`~amortized.simulators.NumPyroModel`: every latent site's prior (or those named
  in ``sites``) is powered exactly where the family has a closed form and by
  sampling-importance-resampling otherwise (:mod:`amortized.simulators.prior_power`; a
  :class:`ApproximatePowerWarning` names the approximate sites).
- A :class:`~amortized.simulators.Simulator`: one of its functions takes ``prior_power``
  as an argument and draws from the powered prior itself (the library cannot power a
  prior it does not see).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_positive_int
from .numpyro_model import NumPyroModel, _trace
from .prior_power import DEFAULT_SIR_CANDIDATES, PowerPrior, improper_parameters
from .prior_power import power_distribution as _power
from .simulator import Simulator, _accepted_args, make_simulator

#: the simulator output that carries gamma
CONTEXT = "prior_power"


class ApproximatePowerWarning(UserWarning):
    """A prior site has no closed-form power; its powered prior is sampled by SIR."""


def _check_range(gamma: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(g) for g in gamma)
    except (TypeError, ValueError):
        raise TypeError(
            f"power_scaling: gamma must be a (low, high) pair of positive numbers, got {gamma!r}"
        ) from None
    if not (0 < lo < hi < np.inf):
        raise ValueError(
            f"power_scaling: gamma must satisfy 0 < low < high < inf, got ({lo}, {hi})"
        )
    return lo, hi


class PowerScaledModel:
    """See the module docstring.

    Parameters
    ----------
    model : NumPyroModel or Simulator
    gamma : (float, float), default (0.5, 2.0)
        The range of the prior power; ``log gamma`` is uniform on it.
    sites : sequence of str, optional
        NumPyro models: the latent sites whose prior is powered (default: all).
    num_candidates : int, default 64
        Candidates per draw for sites powered by SIR.

    Attributes: ``model`` (the wrapped model; its log densities serve the likelihood side
    of the analysis), ``gamma`` (the range), ``context`` (``{"prior_power": gamma}``),
    ``exact`` (NumPyro models: site -> whether its power is exact), ``simulator``.

    >>> import numpyro, numpyro.distributions as dist
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    ...     with numpyro.plate("n", 5):
    ...         numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> ps = PowerScaledModel(NumPyroModel(model, observed="y"), gamma=(0.5, 2.0))
    >>> draws = ps.simulator.sample(4, seed=0)
    >>> sorted(draws), draws["prior_power"].shape
    (['mu', 'prior_power', 'y'], (4, 1))
    """

    def __init__(
        self,
        model: NumPyroModel | Simulator,
        gamma: Sequence[float] = (0.5, 2.0),
        sites: Sequence[str] | None = None,
        num_candidates: int = DEFAULT_SIR_CANDIDATES,
    ):
        self.gamma = _check_range(gamma)
        self.context = {CONTEXT: self.gamma}
        self.num_candidates = check_positive_int("power_scaling", "num_candidates", num_candidates)
        self.model = model
        if isinstance(model, NumPyroModel):
            self.sites = self._numpyro_sites(model, sites)
            self.exact = self._check_powers(model)
            self.simulator = self._numpyro_simulator(model)
        elif isinstance(model, Simulator):
            if sites is not None:
                raise TypeError(
                    "power_scaling: sites= applies to NumPyro models; a simulator powers its "
                    "own prior from its prior_power argument"
                )
            self.sites, self.exact = None, None
            self.simulator = self._plain_simulator(model)
        else:
            raise TypeError(
                f"power_scaling: model must be a bf.NumPyroModel or a simulator from "
                f"bf.make_simulator, got {type(model).__name__}"
            )
        self.simulator.context = self.signature

    @property
    def signature(self) -> dict[str, Any]:
        """What a network trained on this model's simulations expects of its context:
        ``{"prior_power": {"gamma": [low, high], "sites": [...] or None}}``."""
        sites = None if self.sites is None else list(self.sites)
        return {CONTEXT: {"gamma": [float(g) for g in self.gamma], "sites": sites}}

    # -- NumPyro models ----------------------------------------------------------------
    @staticmethod
    def _numpyro_sites(model: NumPyroModel, sites) -> tuple[str, ...]:
        if sites is None:
            return model.latent_sites
        sites = (sites,) if isinstance(sites, str) else tuple(sites)
        unknown = [s for s in sites if s not in model.latent_sites]
        if unknown or not sites:
            raise KeyError(
                f"power_scaling: sites {unknown or list(sites)} are not latent sites of the "
                f"model; its latent sites are {list(model.latent_sites)}"
            )
        return sites

    def _check_powers(self, model: NumPyroModel) -> dict[str, bool]:
        """Which sites are powered exactly; raises where a power at either end of the range
        does not integrate (checked at one prior draw of the parents)."""
        tr = _trace(model.model, {**model.model_kwargs, **{k: None for k in model.observed}})
        exact = {}
        for name in self.sites:
            d = tr[name]["fn"]
            for g in self.gamma:
                try:
                    q, exact[name] = _power(d, g, self.num_candidates)
                    bad = improper_parameters(q)
                except ValueError as e:  # NumPyro's own argument validation
                    bad = str(e)
                if bad:
                    raise ValueError(
                        f"power_scaling: the prior of site {name!r} ({type(d).__name__}) raised "
                        f"to gamma={g} does not integrate ({bad}: a parameter must be positive); "
                        f"narrow gamma or leave the site out of sites="
                    )
        approx = [n for n, e in exact.items() if not e]
        if approx:
            warnings.warn(
                f"power_scaling: sites {approx} have no closed-form power of their prior; "
                f"their powered priors are sampled by sampling-importance-resampling from "
                f"{self.num_candidates} candidates per draw (an approximation)",
                ApproximatePowerWarning,
                stacklevel=3,
            )
        return exact

    def _numpyro_simulator(self, model: NumPyroModel) -> Simulator:
        keep = model.latent_sites + model.observed
        kwargs = {**model.model_kwargs, **{k: None for k in model.observed}}
        sites, m = self.sites, self.num_candidates
        log_lo, log_hi = np.log(self.gamma)

        def one(key, gamma):
            from numpyro import handlers

            powered = PowerPrior(model.model, gamma=gamma, sites=sites, num_candidates=m)
            tr = handlers.trace(handlers.seed(powered, rng_seed=key)).get_trace(**kwargs)
            return {k: tr[k]["value"] for k in keep}

        simulate = jax.jit(jax.vmap(one))

        def draw_power(batch_size, rng):
            return {CONTEXT: np.exp(rng.uniform(log_lo, log_hi, size=(batch_size, 1)))}

        def powered_prior_predictive(prior_power, batch_size, key):
            g = np.broadcast_to(np.asarray(prior_power, np.float32).reshape(-1), (batch_size,))
            draws = simulate(jax.random.split(key, batch_size), jnp.asarray(g))
            return {k: np.asarray(v, np.float64) for k, v in draws.items()}

        return make_simulator([draw_power, powered_prior_predictive], is_batched=True)

    # -- plain simulators --------------------------------------------------------------
    def _plain_simulator(self, simulator: Simulator) -> Simulator:
        takes = [f for f in simulator.fns if CONTEXT in _accepted_args(f)[0]]
        if not takes:
            raise ValueError(
                f"power_scaling: none of the simulator's functions takes a {CONTEXT!r} "
                f"argument; a plain simulator must draw from its powered prior itself, e.g. "
                f"def prior({CONTEXT}): return {{'mu': np.random.normal(0, 1 / "
                f"np.sqrt({CONTEXT}))}}"
            )
        log_lo, log_hi = np.log(self.gamma)

        def draw_power(batch_shape, rng):
            return {CONTEXT: np.exp(rng.uniform(log_lo, log_hi, size=(*batch_shape, 1)))}

        return Simulator(
            [draw_power, *simulator.fns],
            meta_fn=simulator.meta_fn,
            is_batched=[True, *simulator.is_batched],
            nonfinite=simulator.nonfinite,
        )

    # -- routing -----------------------------------------------------------------------
    def default_adapter(self, observed_as: str = "inference_conditions"):
        """The wrapped NumPyro model's default adapter with ``log(prior_power)`` added to
        the inference conditions (beside the observed sites, or alone when they go to a
        summary network). Plain simulators: write the adapter and route
        ``log(prior_power)`` into ``inference_conditions`` yourself."""
        if not isinstance(self.model, NumPyroModel):
            raise TypeError(
                "PowerScaledModel.default_adapter: only for NumPyro models; for a simulator "
                "write the adapter, with .log('prior_power') concatenated into "
                "'inference_conditions'"
            )
        a = self.model.default_adapter(observed_as).log(CONTEXT)
        if observed_as == "inference_conditions":
            return a.concatenate(["inference_conditions", CONTEXT], into="inference_conditions")
        return a.rename(CONTEXT, "inference_conditions")


def power_scaling(
    model: NumPyroModel | Simulator,
    gamma: Sequence[float] = (0.5, 2.0),
    *,
    sites: Sequence[str] | None = None,
    num_candidates: int = DEFAULT_SIR_CANDIDATES,
) -> PowerScaledModel:
    """``PowerScaledModel(model, gamma, sites, num_candidates)``: the model with its prior
    raised to a power drawn per simulation (see :class:`PowerScaledModel`)."""
    return PowerScaledModel(model, gamma, sites=sites, num_candidates=num_candidates)
