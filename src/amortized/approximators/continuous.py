"""ContinuousApproximator: adapter + learned standardization + networks.

It turns user dicts into network arrays once at the boundary (checking keys, shapes and
finiteness there; :class:`~amortized.approximators.base.Approximator`), trains with the
compiled loop of :mod:`amortized.training`, and returns samples and densities in the user's
original parameter space, keyed by variable name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from .._validation import as_key, check_positive_int, strict
from . import chunked, draw_space
from .base import Approximator
from .core import IC, IV, SV
from .inputs import rows


class ContinuousApproximator(Approximator):
    """Amortized posterior q(theta | x) for continuous parameters.

    Parameters
    ----------
    inference_network : InferenceNetwork
        E.g. ``CouplingFlow()`` or ``FlowMatching()``; built when training starts.
    summary_network : SummaryNetwork, optional
        E.g. ``SetTransformer()``: maps the ``summary_variables`` of one dataset
        ``(N, features)`` to a vector; trained jointly.
    adapter : Adapter, optional
        Maps simulator outputs to ``inference_variables`` / ``inference_conditions`` /
        ``summary_variables``. Without one, data must already use those keys.
    standardize : "all", None, or a network key or list of them, default "all"
        Which network inputs get a learned per-feature standardization.
    regression_adjustment : bool or None, default None (the class's choice)
        Fit a linear regression of the (standardized) targets on what is fixed before
        training (the direct conditions and the summary network's explicit statistics,
        e.g. a set's moments) and let the network learn the scaled residual
        (:mod:`~amortized.approximators.regression_adjustment`; an affine map per
        dataset, so draws and densities stay exact). Applies to vector targets, with at
        least 10 training rows per coefficient. ``ContinuousApproximator``: off unless
        asked; ``ScoringRuleApproximator``: on.

    Examples
    --------
    >>> adapter = bf.Adapter().rename("theta", "inference_variables").rename(
    ...     "x", "inference_conditions")
    >>> approximator = ContinuousApproximator(
    ...     inference_network=bf.networks.FlowMatching(), adapter=adapter)
    """

    @property
    def log_prob_is_exact(self) -> bool:
        """False when the inference network's ``log_prob`` is not the exact density of its
        draws (FlowMatching asked for Hutchinson's trace estimator, a DiffusionModel that
        samples by an SDE): such a log q must not weight draws."""
        return self.log_prob_caveat is None

    @property
    def log_prob_caveat(self) -> str | None:
        """The inference network's reason why ``log_prob`` is not the exact density of its
        draws, or None (:attr:`~amortized.networks.InferenceNetwork.log_prob_caveat`)."""
        net = self.nets.inference if self.is_trained else self.inference_network
        return getattr(net, "log_prob_caveat", None)

    @property
    def one_pass_log_prob(self) -> bool:
        """Whether :meth:`sample_and_log_prob` gets log q from the sampling pass itself (a
        coupling flow) rather than from a second pass over the draws."""
        net = self.nets.inference if self.is_trained else self.inference_network
        return bool(getattr(net, "one_pass_log_prob", False))

    @property
    def validation_loss_ranks_epochs(self) -> bool:
        """Whether the held-out loss ranks epochs, so that early stopping applies (False
        for the consistency models); an ensemble answers for all its members."""
        return self.inference_network.validation_loss_ranks_epochs

    def _require_density(self, what: str) -> None:
        self._require_trained(what)
        if not getattr(self.inference_network, "has_log_prob", False):
            raise NotImplementedError(f"{type(self.inference_network).__name__} has no density")

    # -- inference ---------------------------------------------------------------------
    @strict
    def sample(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = True,
    ) -> dict[str, np.ndarray]:
        """Posterior draws ``{name: (num_datasets, num_samples, *shape)}`` in the original
        parameter space, for every dataset in ``conditions``. Requests larger than one
        compiled call (2^17 draws) run in chunks, with a progress bar in a terminal."""
        z, _ = self._draw("sample", num_samples, conditions, seed, progress, False)
        return self._to_user_space(z)

    @strict
    def sample_and_log_prob(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = True,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Draws as :meth:`sample` gives them, and ``log q(theta_s | x_i)`` of each in the
        original space, ``(num_datasets, num_samples)``: what :meth:`log_prob_of_draws`
        computes, from the same pass through the network for a coupling flow (other
        networks evaluate their density after sampling). A draw that the inverse map
        saturated (moved inside its support, with a ``SupportBoundaryWarning``) gets NaN:
        it is not where the network put it, so no density describes it, and importance
        sampling gives it weight zero.

        >>> sim = bf.simulators.benchmarks.two_moons()
        >>> approximator = ContinuousApproximator(inference_network=bf.networks.CouplingFlow(
        ...     depth=2), adapter=bf.Adapter.create_default("theta", "x"))
        >>> history = approximator.fit(dataset=sim.sample(512, seed=0), epochs=2,
        ...                            batch_size=128, seed=0, progress=False)
        >>> data = {"x": sim.sample(3, seed=1)["x"]}
        >>> draws, log_q = approximator.sample_and_log_prob(num_samples=100, conditions=data)
        >>> draws["theta"].shape, log_q.shape
        ((3, 100, 2), (3, 100))
        """
        self._require_density("sample_and_log_prob")
        z, lp = self._draw("sample_and_log_prob", num_samples, conditions, seed, progress, True)
        draws = self._to_user_space(z)
        return draws, draw_space.log_q_in_user_space(self.adapter, z, lp, draws)

    def _adapt_draws(self, draws, n: int, s: int, check_support: bool = True):
        return draw_space.adapt_draws(self.adapter, draws, n, s, check_support)

    def _draw(self, where, num_samples, conditions, seed, progress, with_log_prob):
        """Adapter-space draws ``(n, S, dim)`` (and their log q, or None), chunked."""
        self._require_trained(where)
        num_samples = check_positive_int(where, "num_samples", num_samples)
        routes = self._check_condition_keys(conditions, where)
        arrays = self.to_network_arrays(conditions, need_variables=False, where="conditions")
        self._warn_out_of_range(arrays, routes, where)
        if arrays:
            n = rows(arrays)
        elif IC in self._shapes or SV in self._shapes:
            raise KeyError(
                f"{where}: no conditions arrived for a conditional approximator; "
                f"expected keys that the adapter routes to {sorted(self._shapes)}"
            )
        else:
            n = 1  # unconditional density
        return chunked.draw(
            self.nets,
            self.stats,
            arrays,
            n,
            num_samples,
            as_key(seed),
            with_log_prob=with_log_prob,
            progress=progress,
        )

    @strict
    def log_prob(self, data: Mapping[str, Any]) -> np.ndarray:
        """log q(theta | x) in the original parameter space, ``(num_datasets,)``."""
        self._require_density("log_prob")
        if not isinstance(data, Mapping):
            raise TypeError(f"log_prob: expected a dict of arrays, got {type(data).__name__}")
        if self.adapter is not None:
            adapted, ldj = self.adapter.forward(data, strict=True, log_det_jac=True)
        else:
            adapted, ldj = dict(data), {}
        arrays = self._network_arrays(adapted, True, "log_prob data")
        lp = np.asarray(chunked.log_prob(self.nets, self.stats, arrays), np.float64)
        if IV in ldj:
            j = np.asarray(ldj[IV], np.float64)
            lp = lp + j.reshape(j.shape[0], -1).sum(axis=1)
        return lp

    @strict
    def log_prob_of_draws(
        self, *, draws: Mapping[str, Any], conditions: Mapping[str, Any]
    ) -> np.ndarray:
        """log q(theta_s | x_i) for many draws per dataset, ``(num_datasets, num_samples)``:
        ``draws`` ``{name: (num_datasets, num_samples, *shape)}`` in the original space (as
        :meth:`sample` returns them), ``conditions`` as for :meth:`sample`. The same numbers
        as :meth:`log_prob` on the draws with each dataset repeated, but every dataset goes
        through the summary network once (importance weights need thousands of draws per
        dataset).

        >>> sim = bf.simulators.benchmarks.two_moons()
        >>> approximator = ContinuousApproximator(inference_network=bf.networks.CouplingFlow(
        ...     depth=2), adapter=bf.Adapter.create_default("theta", "x"))
        >>> history = approximator.fit(dataset=sim.sample(512, seed=0), epochs=2,
        ...                            batch_size=128, seed=0, progress=False)
        >>> data = {"x": sim.sample(3, seed=1)["x"]}
        >>> draws = approximator.sample(num_samples=100, conditions=data, seed=2)
        >>> log_q = approximator.log_prob_of_draws(draws=draws, conditions=data)
        >>> log_q.shape
        (3, 100)
        """
        self._require_density("log_prob_of_draws")
        if not isinstance(draws, Mapping) or not draws:
            raise TypeError("log_prob_of_draws: draws must be a non-empty dict of arrays")
        lead = {k: np.shape(v)[:2] for k, v in draws.items()}
        if len(set(lead.values())) != 1 or any(len(v) < 2 for v in lead.values()):
            raise ValueError(
                f"log_prob_of_draws: every draw array must lead with (num_datasets, "
                f"num_samples) and they must agree; got leading shapes {lead}"
            )
        n, s = next(iter(lead.values()))
        adapted, ldj = self._adapt_draws(draws, n, s)
        if IV not in adapted:
            raise KeyError(
                f"log_prob_of_draws: draws {sorted(draws)} do not form the inference variables"
            )
        x = jnp.asarray(np.reshape(adapted[IV], (n, s, *self._shapes[IV])), jnp.float32)
        arrays = self.to_network_arrays(conditions, need_variables=False, where="conditions")
        return chunked.log_prob_draws(self.nets, self.stats, arrays, x) + ldj

    def _to_user_space(self, z: np.ndarray) -> dict[str, np.ndarray]:
        return draw_space.to_user_space(self.adapter, z)

    @strict
    def embed(self, data: Mapping[str, Any]) -> np.ndarray:
        """What the inference network is conditioned on: standardized direct conditions and
        learned summaries, ``(num_datasets, cond_dim)`` (the space of out-of-distribution
        checks)."""
        self._require_trained("embed")
        arrays = self.to_network_arrays(data, need_variables=False, where="embed data")
        if not arrays:
            raise ValueError("embed: this approximator has no conditions")
        return np.asarray(chunked.embed(self.nets, self.stats, arrays))

    @strict
    def summarize(self, data: Mapping[str, Any]) -> np.ndarray:
        """Learned summaries ``(num_datasets, summary_dim)`` of the summary network."""
        self._require_trained("summarize")
        if self.nets.summary is None:
            raise ValueError("summarize: this approximator has no summary network")
        arrays = self.to_network_arrays(data, need_variables=False, where="summarize data")
        return np.asarray(chunked.summaries(self.nets, self.stats, arrays))
