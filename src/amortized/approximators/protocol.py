"""What a posterior estimator with a density offers, as one protocol.

The amortized Bayesian workflow, diagnostics and reports need the same few capabilities of
an estimator, whatever its kind (one network, an ensemble, ...):

- ``sample(num_samples=, conditions=, seed=)``: draws ``{name: (num_datasets, num_samples,
  *shape)}`` in the original parameter space;
- ``log_prob_of_draws(draws=, conditions=)``: log q of many draws per dataset,
  ``(num_datasets, num_samples)``;
- ``sample_and_log_prob(...)``: both, with ``one_pass_log_prob`` telling whether log q comes
  from the sampling pass itself (a coupling flow) or costs a second pass;
- ``log_prob_caveat``: None when log q is the exact density of the draws, else the reason
  (importance weights refuse such an estimator by name);
- ``embed(data)``: what the estimator conditions on, ``(num_datasets, d)``: the space of
  out-of-distribution checks.

:func:`density_estimator` resolves what a user passes (an estimator, or a workflow that holds
one in ``approximator``) and names each missing capability.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

CAPABILITIES = (
    "sample",
    "sample_and_log_prob",
    "log_prob_of_draws",
    "embed",
    "log_prob_caveat",
    "one_pass_log_prob",
)


@runtime_checkable
class DensityEstimator(Protocol):
    """A trained posterior estimator with draws, an exact or flagged density and an
    embedding of its conditions (see the module docstring)."""

    @property
    def log_prob_caveat(self) -> str | None: ...

    @property
    def one_pass_log_prob(self) -> bool: ...

    def sample(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = True,
    ) -> dict[str, np.ndarray]: ...

    def sample_and_log_prob(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = True,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]: ...

    def log_prob_of_draws(
        self, *, draws: Mapping[str, Any], conditions: Mapping[str, Any]
    ) -> np.ndarray: ...

    def embed(self, data: Mapping[str, Any]) -> np.ndarray: ...


def density_estimator(obj: Any, where: str) -> DensityEstimator:
    """``obj`` itself when it is a :class:`DensityEstimator`, or the estimator a workflow
    holds in ``approximator`` (a :class:`~amortized.BasicWorkflow`); otherwise a TypeError
    that names the capabilities ``obj`` lacks.

    >>> from amortized.approximators.protocol import density_estimator
    >>> density_estimator(object(), "f")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: f: expected a trained estimator with a density (...); object lacks sample, ...
    """
    inner = getattr(obj, "approximator", None)
    if inner is not None and not isinstance(obj, DensityEstimator):
        obj = inner
    if isinstance(obj, DensityEstimator):
        return obj
    missing = [c for c in CAPABILITIES if not hasattr(obj, c)]
    raise TypeError(
        f"{where}: expected a trained estimator with a density (a BasicWorkflow, "
        f"ContinuousApproximator or EnsembleApproximator); {type(obj).__name__} lacks "
        f"{', '.join(missing)}"
    )
