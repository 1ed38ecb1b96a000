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

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from scipy.special import logsumexp

from .._validation import as_key, strict
from .continuous import ContinuousApproximator

FORMAT = "amortized-ensemble"
FORMAT_VERSION = 2  # 2: checksums.json covers every entry


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
        if isinstance(approximators, ContinuousApproximator | Mapping) or not isinstance(
            approximators, Sequence
        ):
            raise TypeError(
                f"EnsembleApproximator: approximators must be a list of ContinuousApproximator, "
                f"got {type(approximators).__name__}"
            )
        members = list(approximators)
        if not members:
            raise ValueError("EnsembleApproximator: approximators is empty; give at least one")
        for i, m in enumerate(members):
            if not isinstance(m, ContinuousApproximator):
                raise TypeError(
                    f"EnsembleApproximator: approximators[{i}] must be a ContinuousApproximator, "
                    f"got {type(m).__name__}"
                )
        if len({id(m) for m in members}) != len(members):
            raise ValueError(
                "EnsembleApproximator: the same approximator object appears twice; each member "
                "must be its own instance (they are trained separately)"
            )
        if weights is None:
            w = np.full(len(members), 1.0 / len(members))
        else:
            w = np.asarray(weights, np.float64)
            if w.shape != (len(members),) or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError(
                    f"EnsembleApproximator: weights must be {len(members)} finite non-negative "
                    f"numbers (one per member), got {weights!r}"
                )
            if w.sum() <= 0:
                raise ValueError("EnsembleApproximator: weights sum to 0")
            w = w / w.sum()
        self.members = members
        self.weights = w

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

    def _member_seeds(self, seed: int | None) -> list[int]:
        """One independent seed per member from the ensemble's seed, and last the seed of
        the training data the members share."""
        seq = np.random.SeedSequence(seed)
        return [int(s.generate_state(1)[0]) for s in seq.spawn(len(self.members) + 1)]

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
        *seeds, data_seed = self._member_seeds(seed)
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

    def _mixture(self, per_member: list[dict], key) -> dict[str, np.ndarray]:
        """Each place's draw from member k with probability w_k (a categorical draw with
        ``key`` per dataset and draw)."""
        first = per_member[0]
        for i, d in enumerate(per_member[1:], start=1):
            got = {k: np.shape(v) for k, v in d.items()}
            want = {k: np.shape(v) for k, v in first.items()}
            if got != want:
                raise ValueError(
                    f"EnsembleApproximator.sample: member {i} drew {got}, member 0 drew "
                    f"{want}; members must share their variables and shapes"
                )
        n, s = np.shape(next(iter(first.values())))[:2]
        pick = np.asarray(jax.random.choice(key, len(self.members), shape=(n, s), p=self.weights))
        rows, cols = np.arange(n)[:, None], np.arange(s)[None, :]
        return {name: np.stack([d[name] for d in per_member])[pick, rows, cols] for name in first}

    @staticmethod
    def _stacked(per_member: list[dict]) -> dict[str, np.ndarray]:
        """``{name: (num_members, num_datasets, num_samples, dim)}``, flattened per
        variable."""
        from ..diagnostics._arrays import as_draws

        return {
            name: np.stack(
                [as_draws("member_draws", {name: d[name]}, require_targets=False).estimates
                 for d in per_member]
            )
            for name in per_member[0]
        }  # fmt: skip

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
        return self._mixture(per_member, pick), per_member

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
        return draws, (self._stacked(per_member) if len(self.members) > 1 else None)

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
        return self._stacked(self._member_samples(num_samples, conditions, keys, progress))

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
        return self._mix(np.stack([m.log_prob(data) for m in self.members]))

    @strict
    def log_prob_of_draws(
        self, *, draws: Mapping[str, Any], conditions: Mapping[str, Any]
    ) -> np.ndarray:
        """The mixture's log density of many draws per dataset,
        ``(num_datasets, num_samples)``; arguments as in
        :meth:`ContinuousApproximator.log_prob_of_draws`."""
        return self._mix(
            np.stack(
                [m.log_prob_of_draws(draws=draws, conditions=conditions) for m in self.members]
            )
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

    def _mix(self, member_log_q: np.ndarray) -> np.ndarray:
        """logsumexp_k (log w_k + log q_k) over the leading member axis."""
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        log_w = log_w.reshape((-1,) + (1,) * (member_log_q.ndim - 1))
        return logsumexp(member_log_q + log_w, axis=0)

    # -- saving ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the trained ensemble to one zip file (the members' model files inside),
        atomically as :func:`save_approximator` writes; ``extra``: JSON-serializable
        settings kept beside it (a workflow's). Read it back with :meth:`load`."""
        from .model_file import write_zip_atomically, zip_bytes
        from .serialization import approximator_entries

        for i, m in enumerate(self.members):
            if not m.is_trained:
                raise RuntimeError(f"save: ensemble member {i} is not trained; call fit first")
        names = [f"member_{i}.amz" for i in range(len(self.members))]
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "weights": self.weights.tolist(),
            "members": names,
            "extra": dict(extra or {}),
        }
        entries = {"ensemble.json": json.dumps(manifest, indent=1).encode()}
        for name, m in zip(names, self.members, strict=True):
            entries[name] = zip_bytes(approximator_entries(m))
        return write_zip_atomically(path, entries)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EnsembleApproximator:
        """Read an ensemble written by :meth:`save`."""
        return cls.load_with_extra(path)[0]

    @classmethod
    def load_with_extra(cls, path: str | os.PathLike) -> tuple[EnsembleApproximator, dict]:
        """Read an ensemble written by :meth:`save`, and the ``extra`` saved with it."""
        from .model_file import ModelFileError, check_format, read_checked_zip
        from .serialization import load_approximator

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"load: no saved ensemble at {str(path)!r}")
        entries = read_checked_zip(path, newest=FORMAT_VERSION)
        try:
            manifest = json.loads(entries["ensemble.json"])
            blobs = [entries[name] for name in manifest["members"]]
        except (KeyError, json.JSONDecodeError, TypeError) as e:
            raise ModelFileError(
                f"load: {str(path)!r} is not a readable amortized ensemble file "
                f"({type(e).__name__}: {e}); it may be corrupted or truncated"
            ) from e
        check_format(manifest, path, FORMAT, FORMAT_VERSION)
        members = [
            load_approximator(f"{path}:{name}", data=blob)[0]
            for name, blob in zip(manifest["members"], blobs, strict=True)
        ]
        return cls(members, weights=manifest["weights"]), dict(manifest.get("extra", {}))
