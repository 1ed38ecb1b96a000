"""RatioApproximator: neural ratio estimation, and its posterior by MCMC.

Training, adapters, standardization, summary networks and saving are those of
:class:`ContinuousApproximator`, with a :class:`~amortized.networks.RatioNetwork`
(contrastive NRE) as the inference network: the parameters go to ``inference_variables``,
the data to ``inference_conditions`` / ``summary_variables``. ``log_ratio(data)`` gives
``log p(x | theta) - log p(x)`` for pairs; :meth:`RatioApproximator.model` turns it into
the likelihood of a :class:`~amortized.LikelihoodModel` (a ratio differs from the
likelihood by ``log p(x)``, which does not depend on theta), so that
:func:`~amortized.workflow.mcmc_posterior` samples ``p(theta) r(theta, x)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import strict
from ..networks.ratio_network import RatioNetwork
from . import core
from .classifier import WithoutDraws, check_classifier_options
from .continuous import ContinuousApproximator
from .core import IV


def _log_ratio(nets, stats, batch) -> jax.Array:
    x = batch[IV]
    cond = core.conditions(nets, stats, batch, x.shape[0])
    z = core._network_x(stats, x, core._adjustment(nets, stats, batch))
    return nets.inference.log_ratio(z, cond)


_log_ratio_jit = jax.jit(_log_ratio)


class RatioApproximator(WithoutDraws, ContinuousApproximator):
    """Contrastive neural ratio estimation (BayesFlow's ``RatioApproximator``).

    Parameters
    ----------
    adapter : Adapter
        Parameters to ``inference_variables``, data to ``inference_conditions`` (or
        ``summary_variables`` with a summary network).
    classifier_network : dict, optional
        Options of the classifier MLP (``widths`` default four layers of 256,
        ``activation``, ``dropout``, ``residual``; see ``RatioNetwork``).
    summary_network : SummaryNetwork, optional
    gamma : float, default 1.0
    K : int, default 5
        As in :class:`~amortized.networks.RatioNetwork`.
    standardize : default "all"
    regression_adjustment : bool, optional
        As in :class:`ContinuousApproximator` (off by default).

    Examples
    --------
    >>> sim = bf.simulators.benchmarks.gaussian_linear()
    >>> approx = bf.approximators.RatioApproximator(
    ...     adapter=bf.Adapter.create_default("theta", "x"), K=3)
    >>> _ = approx.fit(dataset=sim.sample(256, seed=0), epochs=1, batch_size=64, seed=1,
    ...                progress=False)
    >>> approx.log_ratio(sim.sample(4, seed=2)).shape
    (4,)
    """

    no_draws_reason = (
        "a ratio estimator has no draws or density of its own; log_ratio gives "
        "log p(x | theta) - log p(x), and the posterior comes from MCMC: "
        "bf.workflow.mcmc_posterior(approximator.model(...), data)"
    )

    @strict
    def __init__(
        self,
        adapter: Any = None,
        classifier_network: Mapping[str, Any] | None = None,
        summary_network: Any = None,
        gamma: float = 1.0,
        K: int = 5,  # noqa: N803 (BayesFlow's name)
        standardize: str | Sequence[str] | None = "all",
        regression_adjustment: bool | None = None,
    ):
        check_classifier_options("RatioApproximator", classifier_network)
        super().__init__(
            inference_network=RatioNetwork(subnet_kwargs=classifier_network, gamma=gamma, K=K),
            summary_network=summary_network,
            adapter=adapter,
            standardize=standardize,
            regression_adjustment=regression_adjustment,
        )

    @classmethod
    def from_parts(cls, network, summary_network, adapter, standardize, state):
        cfg = network.config
        return cls(
            adapter=adapter,
            classifier_network=cfg["subnet_kwargs"],
            summary_network=summary_network,
            gamma=cfg["gamma"],
            K=cfg["K"],
            standardize=standardize,
            regression_adjustment=state.get("regression_adjustment"),
        )

    @strict
    def log_ratio(self, data: Mapping[str, Any]) -> np.ndarray:
        """``log p(x | theta) - log p(x)`` ``(num_rows,)`` for each row of ``data``
        (parameters and data as the simulator names them)."""
        self._require_trained("log_ratio")
        arrays = self.to_network_arrays(data, where="log_ratio data")
        return np.asarray(_log_ratio_jit(self.nets, self.stats, arrays))

    def log_ratio_fn(self, parameters: Sequence[str]) -> Callable[..., jax.Array]:
        """``f(params, data)``: the log ratio of one draw ``{name: array}`` and one dataset
        ``{key: array of one dataset's shape}``, in JAX (differentiable, vmappable)."""
        self._require_trained("log_ratio_fn")
        names = (parameters,) if isinstance(parameters, str) else tuple(parameters)

        def f(params, data):
            batch = {p: jnp.reshape(jnp.asarray(params[p], jnp.float32), (1, -1)) for p in names}
            batch |= {k: jnp.asarray(v, jnp.float32)[None] for k, v in data.items()}
            return _log_ratio(self.nets, self.stats, core.adapted_inputs(self.adapter, batch))[0]

        return f

    def model(
        self,
        simulator: Any,
        log_prior: Callable[..., Any],
        parameters: Sequence[str],
        observed: str | Sequence[str],
        supports: Mapping[str, Any] | None = None,
    ):
        """A :class:`~amortized.LikelihoodModel` with ``log_prior(params)`` (JAX) and the
        log ratio as its log likelihood (the same posterior: they differ by ``log p(x)``),
        for :func:`~amortized.workflow.mcmc_posterior`."""
        from ..simulators import LikelihoodModel

        return LikelihoodModel(
            simulator,
            log_likelihood=self.log_ratio_fn(parameters),
            log_prior=log_prior,
            parameters=list(parameters),
            observed=observed,
            supports=supports,
        )
