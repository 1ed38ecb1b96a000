"""The pure parts of an ensemble's mixture ``sum_k w_k q_k(theta | x)``: checked members
and weights, the members' seeds, picking mixture draws from the members' draws, and the
mixture's log density from the members' (:class:`~amortized.approximators.ensemble.
EnsembleApproximator` sequences them).

Example
-------
>>> import numpy as np
>>> float(log_density(np.array([0.5, 0.5]), np.log(np.array([[0.2], [0.4]])))[0])
... # doctest: +ELLIPSIS
-1.203...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from scipy.special import logsumexp


def check_members(approximators: Any, weights: Any) -> tuple[list, np.ndarray]:
    """The members as a list and the weights normalized ``(num_members,)``; raises for
    anything else, naming what is wrong."""
    from .continuous import ContinuousApproximator

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
    return members, w


def member_seeds(seed: int | None, num_members: int) -> list[int]:
    """One independent seed per member from the ensemble's seed, and last the seed of the
    training data the members share."""
    seq = np.random.SeedSequence(seed)
    return [int(s.generate_state(1)[0]) for s in seq.spawn(num_members + 1)]


def pick(per_member: list[dict], weights: np.ndarray, key) -> dict[str, np.ndarray]:
    """Each place's draw from member k with probability w_k (a categorical draw with
    ``key`` per dataset and draw); ``per_member``: each member's draws ``{name:
    (num_datasets, num_samples, ...)}``."""
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
    chosen = np.asarray(jax.random.choice(key, len(per_member), shape=(n, s), p=weights))
    rows, cols = np.arange(n)[:, None], np.arange(s)[None, :]
    return {name: np.stack([d[name] for d in per_member])[chosen, rows, cols] for name in first}


def stacked(per_member: list[dict]) -> dict[str, np.ndarray]:
    """``{name: (num_members, num_datasets, num_samples, dim)}``, flattened per variable."""
    from ..diagnostics._arrays import as_draws

    return {
        name: np.stack(
            [as_draws("member_draws", {name: d[name]}, require_targets=False).estimates
             for d in per_member]
        )
        for name in per_member[0]
    }  # fmt: skip


def log_density(weights: np.ndarray, member_log_q: np.ndarray) -> np.ndarray:
    """logsumexp_k (log w_k + log q_k) over the leading member axis of ``member_log_q``
    ``(num_members, ...)``."""
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    log_w = log_w.reshape((-1,) + (1,) * (member_log_q.ndim - 1))
    return logsumexp(member_log_q + log_w, axis=0)
