"""Neural likelihood estimation: a conditional density of one observation given the
parameters, used as the likelihood of MCMC for any number of i.i.d. observations.

A :class:`~amortized.ContinuousApproximator` (or a ``BasicWorkflow``) trained with one
observation ``y`` as its ``inference_variables`` and the parameters as its
``inference_conditions`` is a density ``q(y | theta)``. For a dataset of ``N`` i.i.d.
observations, ``log p(y_1..N | theta) ~ sum_i log q(y_i | theta)``: one network serves
every ``N`` (Papamakarios et al. 2019), and the posterior comes from MCMC on
``log p(theta) + sum_i log q(y_i | theta)`` (:func:`~amortized.workflow.mcmc_posterior`,
or the amortized Bayesian workflow through :meth:`NeuralLikelihood.model`).

The log likelihood is an estimate (a trained network's density); it is exact only as far
as the network is. It is written in JAX end to end (adapter, standardization, network), so
NUTS differentiates it. The adapter must map the parameters and one observation the way it
did in training; a transform of ``y`` adds a Jacobian that does not depend on ``theta`` and
is left out (it changes no posterior and no self-normalized importance weight).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import strict
from . import core
from .core import IC, IV


class NeuralLikelihood:
    """``log_likelihood(params, data)`` from a trained likelihood approximator.

    Parameters
    ----------
    estimator : ContinuousApproximator or BasicWorkflow
        Trained with one observation routed to ``inference_variables`` and the parameters
        to ``inference_conditions``; its density must be exact (a coupling flow, or
        flow matching with the exact trace).
    parameters : sequence of str
        The parameter names the adapter routes to the conditions.
    observed : str
        The name of the observation the adapter routes to the inference variables.

    ``log_likelihood(params, data)``: one draw ``{name: array of its shape}`` and one
    dataset ``{observed: (N, ...)}`` of ``N`` i.i.d. rows -> the scalar
    ``sum_i log q(y_i | theta)`` (JAX; vmapped and differentiated by the samplers).

    Examples
    --------
    >>> sim = bf.make_simulator([lambda: {"mu": np.random.normal(size=1)},
    ...                          lambda mu: {"y": mu + np.random.normal(size=1)}])
    >>> wf = bf.BasicWorkflow(simulator=sim, inference_variables="y",
    ...                       inference_conditions="mu")
    >>> _ = wf.fit_offline(sim.sample(512, seed=0), epochs=2, early_stopping=False,
    ...                    seed=1, progress=False)
    >>> nle = bf.approximators.NeuralLikelihood(wf, parameters=["mu"], observed="y")
    >>> float(nle.log_likelihood({"mu": jnp.zeros(1)}, {"y": jnp.zeros((5, 1))})) < 0
    True
    """

    @strict
    def __init__(self, estimator: Any, parameters: Sequence[str], observed: str):
        approx = getattr(estimator, "approximator", estimator)
        if not hasattr(approx, "nets") or not hasattr(approx, "stats"):
            raise TypeError(
                f"NeuralLikelihood: expected a trained ContinuousApproximator or BasicWorkflow, "
                f"got {type(estimator).__name__}"
            )
        approx._require_trained("NeuralLikelihood")
        caveat = approx.log_prob_caveat
        if caveat is not None:
            raise ValueError(f"NeuralLikelihood: the likelihood needs an exact density; {caveat}")
        self.parameters = (parameters,) if isinstance(parameters, str) else tuple(parameters)
        self.observed = str(observed)
        if approx.adapter is None:
            raise ValueError(
                "NeuralLikelihood: the approximator has no adapter, so the parameters and the "
                "observation cannot be told apart by name; train it with one (e.g. "
                "BasicWorkflow(inference_variables=observed, inference_conditions=parameters))"
            )
        shapes = approx._shapes
        if IC not in shapes or approx.summary_network is not None:
            raise ValueError(
                "NeuralLikelihood: the approximator must have been trained with the parameters "
                "as 'inference_conditions' and no summary network (a density of one "
                "observation given the parameters)"
            )
        self._approx = approx
        self._check_routes()

    def _check_routes(self) -> None:
        """The names must reach the right network inputs: checked once, on two rows."""
        from ..adapters.usage import key_routes

        rng = np.random.default_rng(0)  # distinct rows, so that each key's route shows
        rows = {p: rng.normal(size=(2, 1)).astype(np.float32) for p in self.parameters}
        rows[self.observed] = rng.normal(size=(2, _size(self._approx._shapes[IV]))).astype(
            np.float32
        )
        try:
            routes = key_routes(self._approx.adapter, rows)
        except Exception as e:  # the adapter needs other keys or other shapes
            raise ValueError(
                f"NeuralLikelihood: the approximator's adapter does not take parameters "
                f"{list(self.parameters)} and observation {self.observed!r} alone: {e}"
            ) from e
        wrong = [p for p in self.parameters if routes.get(p) != {IC}]
        if wrong or routes.get(self.observed) != {IV}:
            raise ValueError(
                f"NeuralLikelihood: the adapter must route the parameters to "
                f"'inference_conditions' and {self.observed!r} to 'inference_variables'; it "
                f"routes { ({k: sorted(v) for k, v in routes.items()}) }"
            )

    @property
    def log_prob_caveat(self) -> str:
        return "a neural likelihood: log q(y | theta) of a trained network, an estimate"

    def log_likelihood(self, params: Mapping[str, Any], data: Mapping[str, Any]) -> jax.Array:
        """``sum_i log q(y_i | theta)`` for one draw and one dataset of i.i.d. rows."""
        y = jnp.asarray(data[self.observed], jnp.float32)
        rows = y.reshape(y.shape[0], -1) if y.ndim > 1 else y.reshape(-1, 1)
        n = rows.shape[0]
        batch = {}
        for p in self.parameters:
            v = jnp.ravel(jnp.asarray(params[p], jnp.float32))
            batch[p] = jnp.broadcast_to(v, (n, v.shape[0]))
        batch[self.observed] = rows
        net = core.adapted_inputs(self._approx.adapter, batch)
        return jnp.sum(core.log_prob(self._approx.nets, self._approx.stats, net))

    def model(
        self,
        simulator: Any,
        log_prior: Callable[..., Any],
        supports: Mapping[str, Any] | None = None,
    ):
        """A :class:`~amortized.LikelihoodModel` with this likelihood: ``simulator``
        draws the parameters and whole datasets (``observed`` of shape ``(N, ...)``),
        ``log_prior(params)`` is the prior's JAX log density."""
        from ..simulators import LikelihoodModel

        return LikelihoodModel(
            simulator,
            log_likelihood=self.log_likelihood,
            log_prior=log_prior,
            parameters=list(self.parameters),
            observed=self.observed,
            supports=supports,
        )


def _size(x: Any) -> int:
    """Elements of an array, or of a shape tuple."""
    shape = x if isinstance(x, tuple) else np.shape(x)
    return int(np.prod(shape, dtype=int))
