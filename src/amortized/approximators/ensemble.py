"""An ensemble of approximators as one posterior: the equal-weight (or weighted) mixture.

Deep ensembles average out what one training run gets wrong by chance (its initialization,
its batch order): K approximators trained on the same simulations with different seeds give
the mixture density

    q(theta | x) = sum_k w_k q_k(theta | x),   w_k >= 0, sum_k w_k = 1,

which is still a normalized density in the original parameter space (each member's
``log_prob`` is), so draws, ``log_prob`` and everything built on them (importance
sampling, calibration checks) work as for one approximator. A mixture of members trained on
the same simulations averages out part of each member's error (BENCHMARKS.md, sbibm's
gaussian_linear_uniform). Members that disagree on a dataset point to an approximation
problem there; each member stays available in ``members``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .._validation import as_key, strict
from . import ensemble_file, mixture
from .continuous import ContinuousApproximator


class EnsembleApproximator:
    """The mixture ``sum_k w_k q_k(theta | x)`` of several :class:`ContinuousApproximator`.

    Parameters
    ----------
    approximators : sequence of ContinuousApproximator
        The members (at least one). Trained ones are used as they are; :meth:`fit` trains
        each with its own seed. Their draws must carry the same names and shapes (e.g.
        several inference networks behind the same adapter).
    weights : sequence of float, optional
        Mixture weights, one per member, non-negative (normalized here); default equal.

    Examples
    --------
    >>> sim = bf.simulators.benchmarks.two_moons()
    >>> adapter = bf.Adapter.create_default("theta", "x")
    >>> members = [bf.ContinuousApproximator(inference_network=bf.networks.CouplingFlow(
    ...     depth=2), adapter=adapter) for _ in range(2)]
    >>> ensemble = bf.approximators.EnsembleApproximator(members)
    >>> histories = ensemble.fit(dataset=sim.sample(512, seed=0), epochs=2, batch_size=128,
    ...                          seed=1, progress=False)
    >>> x_obs = sim.sample(3, seed=2)["x"]
    >>> ensemble.sample(num_samples=100, conditions={"x": x_obs}, seed=2)["theta"].shape
    (3, 100, 2)
    """

    @strict
    def __init__(
        self,
        approximators: Sequence[ContinuousApproximator],
        weights: Sequence[float] | None = None,
    ):
        self.members, self.weights = mixture.check_members(approximators, weights)

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self):
        return iter(self.members)

    @property
    def is_trained(self) -> bool:
        return all(m.is_trained for m in self.members)

    @property
    def log_prob_is_exact(self) -> bool:
        """The mixture density is exact when every member's is."""
        return self.log_prob_caveat is None

    @property
    def log_prob_caveat(self) -> str | None:
        """The first member's reason why its ``log_prob`` is not exact, or None."""
        return next((c for m in self.members if (c := m.log_prob_caveat) is not None), None)

    @property
    def one_pass_log_prob(self) -> bool:
        """False: the mixture's log q needs every member's density of every draw, a second
        pass (:meth:`sample_and_log_prob`)."""
        return False

    @property
    def histories(self) -> list[dict[str, list]]:
        """Each member's training history."""
        return [m.history for m in self.members]

    @property
    def validation_loss_ranks_epochs(self) -> bool:
        """Early stopping applies when it does for every member's network."""
        return all(m.inference_network.validation_loss_ranks_epochs for m in self.members)

    # -- training ----------------------------------------------------------------------
    def fit(
        self,
        *,
        seed: int | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        **fit_kwargs: Any,
    ) -> list[dict[str, list]]:
        """Train every member with :meth:`ContinuousApproximator.fit` and ``fit_kwargs`` on
        the same simulations: each member with its own seed (initialization, batch order)
        derived from ``seed``, all with one ``data_seed`` (the same held-out split, the
        same online simulations). ``checkpoint_dir`` gets a folder per member
        (``member_0``, ...). Returns the members' histories."""
        if "data_seed" in fit_kwargs:
            raise TypeError(
                "EnsembleApproximator.fit: data_seed is derived from seed (one for all "
                "members); pass seed only"
            )
        *seeds, data_seed = mixture.member_seeds(seed, len(self.members))
        out = []
        for i, (m, s) in enumerate(zip(self.members, seeds, strict=True)):
            ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / f"member_{i}"
            out.append(m.fit(seed=s, data_seed=data_seed, checkpoint_dir=ckpt, **fit_kwargs))
        return out

    # -- inference ---------------------------------------------------------------------
    def _member_samples(self, num_samples, conditions, keys, progress) -> list[dict]:
        """Each member's draws, member k with ``keys[k]``."""
        return [
            m.sample(num_samples=num_samples, conditions=conditions, seed=k, progress=progress)
            for m, k in zip(self.members, keys, strict=True)
        ]

    @strict
    def sample(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = True,
    ) -> dict[str, np.ndarray]:
        """Mixture draws ``{name: (num_datasets, num_samples, *shape)}``: each draw comes from
        member k with probability w_k, independently (every member draws ``num_samples``
        and a categorical draw picks one per place)."""
        return self._draw(num_samples, conditions, seed, progress)[0]

    def _draw(self, num_samples, conditions, seed, progress) -> tuple[dict, list[dict]]:
        """The mixture draws and each member's draws they were picked from."""
        keys, pick = self._keys(seed)
        per_member = self._member_samples(num_samples, conditions, keys, progress)
        return mixture.pick(per_member, self.weights, pick), per_member

    def _keys(self, seed):
        """Each member's key and the mixture's: the same ``seed`` gives the same member
        draws in :meth:`sample`, :meth:`member_draws` and :meth:`disagreement`."""
        keys = jax.random.split(as_key(seed), len(self.members) + 1)
        return keys[:-1], keys[-1]

    @strict
    def sample_and_disagreement(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = True,
        variables: Sequence[str] | None = None,
    ):
        """The mixture draws of :meth:`sample` (the same for the same ``seed``) and, from
        the same member draws, how far the members disagree per dataset
        (:func:`~amortized.diagnostics.ensemble_disagreement.ensemble_disagreement` over
        ``variables``, default all, side by side in the draws' order)."""
        from ..diagnostics.ensemble_disagreement import ensemble_disagreement

        draws, stacked = self.sample_with_members(
            num_samples=num_samples, conditions=conditions, seed=seed, progress=progress
        )
        if stacked is None:
            return draws, None
        names = list(stacked) if variables is None else list(variables)
        unknown = [v for v in names if v not in stacked]
        if unknown:
            raise KeyError(
                f"EnsembleApproximator: variables {unknown} are not drawn; available: "
                f"{sorted(stacked)}"
            )
        return draws, ensemble_disagreement(np.concatenate([stacked[v] for v in names], -1))

    @strict
    def sample_with_members(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = True,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """The mixture draws of :meth:`sample` (the same for the same ``seed``) and the
        member draws they were picked from, ``{name: (num_members, num_datasets,
        num_samples, dim)}`` (None for a single member)."""
        draws, per_member = self._draw(num_samples, conditions, seed, progress)
        return draws, (mixture.stacked(per_member) if len(self.members) > 1 else None)

    @strict
    def member_draws(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = False,
    ) -> dict[str, np.ndarray]:
        """Every member's draws, ``{name: (num_members, num_datasets, num_samples, dim)}``
        (flattened per variable), each member with its own key split from ``seed`` (the
        member draws :meth:`sample` picks from for the same ``seed``)."""
        keys, _ = self._keys(seed)
        return mixture.stacked(self._member_samples(num_samples, conditions, keys, progress))

    @strict
    def disagreement(
        self,
        *,
        num_samples: int = 1000,
        conditions: Mapping[str, Any],
        seed: int | None = None,
    ):
        """How far the members' posteriors differ per dataset
        (:func:`~amortized.diagnostics.ensemble_disagreement.ensemble_disagreement`, all
        variables side by side): ``disagreement`` and ``log_sd_spread`` ``(num_datasets,
        dim)`` and ``flagged (num_datasets,)``."""
        from ..diagnostics.ensemble_disagreement import ensemble_disagreement

        draws = self.member_draws(num_samples=num_samples, conditions=conditions, seed=seed)
        return ensemble_disagreement(np.concatenate(list(draws.values()), axis=-1))

    @strict
    def log_prob(self, data: Mapping[str, Any]) -> np.ndarray:
        """log sum_k w_k q_k(theta | x) in the original parameter space, ``(num_datasets,)``."""
        return mixture.log_density(self.weights, np.stack([m.log_prob(data) for m in self.members]))

    @strict
    def log_prob_of_draws(
        self, *, draws: Mapping[str, Any], conditions: Mapping[str, Any]
    ) -> np.ndarray:
        """The mixture's log density of many draws per dataset,
        ``(num_datasets, num_samples)``; arguments as in
        :meth:`ContinuousApproximator.log_prob_of_draws`."""
        return mixture.log_density(
            self.weights,
            np.stack(
                [m.log_prob_of_draws(draws=draws, conditions=conditions) for m in self.members]
            ),
        )

    @strict
    def sample_and_log_prob(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = True,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Mixture draws and their mixture log density ``(num_datasets, num_samples)``."""
        draws = self.sample(
            num_samples=num_samples, conditions=conditions, seed=seed, progress=progress
        )
        return draws, self.log_prob_of_draws(draws=draws, conditions=conditions)

    @strict
    def embed(self, data: Mapping[str, Any]) -> np.ndarray:
        """The members' embeddings side by side, ``(num_datasets, sum_k d_k)``: what the
        members condition on (:meth:`ContinuousApproximator.embed`). A dataset far from the
        training data in any member's space is far in this one, so out-of-distribution
        checks in it hold for the whole mixture."""
        return np.concatenate([m.embed(data) for m in self.members], axis=1)

    # -- saving ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the trained ensemble to one zip file (the members' model files inside),
        atomically as :func:`save_approximator` writes; ``extra``: JSON-serializable
        settings kept beside it (a workflow's). Read it back with :meth:`load`."""
        return ensemble_file.save(self.members, self.weights, path, extra)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EnsembleApproximator:
        """Read an ensemble written by :meth:`save`."""
        return cls.load_with_extra(path)[0]

    @classmethod
    def load_with_extra(cls, path: str | os.PathLike) -> tuple[EnsembleApproximator, dict]:
        """Read an ensemble written by :meth:`save`, and the ``extra`` saved with it."""
        members, weights, extra = ensemble_file.load(path)
        return cls(members, weights=weights), extra
