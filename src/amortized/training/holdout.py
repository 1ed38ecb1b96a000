"""The validation rows held out of offline training data for early stopping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from .. import _random


def holdout_size(n: int) -> int:
    """Rows of ``n`` simulations held out for validation: 5%, but at least
    ``min(100, n // 5)``: a 5% share of a small bank is too few rows for a loss that
    decides when to stop (its noise then ends training at random), and a fifth of it is as
    much as training should give up.

    >>> holdout_size(20_000), holdout_size(1_000), holdout_size(400), holdout_size(20)
    (1000, 100, 80, 4)
    """
    n = int(n)
    if n < 2:
        raise ValueError(f"holdout_size: need at least 2 simulations to hold any out, got {n}")
    return max(1, round(0.05 * n), min(100, n // 5))


def split_rows(
    arrays: Mapping[str, Any], num_held_out: int, key: jax.Array
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(train, held_out)``: the rows (leading axis) of every array of a dict, nested
    dicts included, split by one random permutation into ``n - num_held_out`` and
    ``num_held_out`` rows; every row lands in exactly one part.

    >>> tr, va = split_rows({"x": np.arange(10)}, 3, jax.random.key(0))
    >>> sorted(np.concatenate([tr["x"], va["x"]]).tolist()) == list(range(10))
    True
    """
    n = int(jax.tree.leaves(arrays)[0].shape[0])
    if not 0 < num_held_out < n:
        raise ValueError(f"split_rows: num_held_out must lie in (0, {n}), got {num_held_out}")
    order = np.asarray(_random.permutation(key, n))
    val, train = np.sort(order[:num_held_out]), np.sort(order[num_held_out:])
    # a tree: summary_variables may be a dict of sources
    return (
        jax.tree.map(lambda v: v[train], dict(arrays)),
        jax.tree.map(lambda v: v[val], dict(arrays)),
    )
