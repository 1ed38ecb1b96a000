"""The hash-derived permutations and keys of training (amortized._random)."""

import jax
import numpy as np
import pytest
from scipy import stats

from amortized import _random
from amortized.training.fit import _batch_plan


def test_permutation_is_a_permutation_and_depends_on_the_key():
    keys = jax.random.split(jax.random.key(0), 3)
    perms = [np.asarray(_random.permutation(k, 10_000)) for k in keys]
    for p in perms:
        assert p.dtype == np.int32
        np.testing.assert_array_equal(np.sort(p), np.arange(10_000))
    assert not np.array_equal(perms[0], perms[1])
    np.testing.assert_array_equal(perms[0], np.asarray(_random.permutation(keys[0], 10_000)))


def test_permutation_positions_are_uniform():
    # where rows 0..9 land among 20 positions, over 4000 keys: each row's position should
    # be uniform (chi-square on 20 cells, 200 expected per cell). Seeded; the Bonferroni
    # threshold 0.001 / 10 keeps a correct permutation's false failure rate at 1e-3, while
    # a hash that ignored the key or kept rows near their start fails by orders of magnitude
    keys = jax.random.split(jax.random.key(1), 4000)
    perms = np.asarray(jax.vmap(lambda k: _random.permutation(k, 20))(keys))
    positions = np.argsort(perms, axis=1)  # position of row r in each permutation
    for r in range(10):
        counts = np.bincount(positions[:, r], minlength=20)
        assert stats.chisquare(counts).pvalue > 1e-4, (r, counts)
    # pairs: rows 0 and 1 should not keep their order more often than half the time
    kept = np.mean(positions[:, 0] < positions[:, 1])
    assert abs(kept - 0.5) < 4 * 0.5 / np.sqrt(4000)  # 4 standard errors


def test_split_gives_distinct_keys():
    keys = _random.split(jax.random.key(3), 1000)
    words = np.asarray(jax.random.key_data(keys))
    assert words.shape == (1000, 2)
    assert len({tuple(w) for w in words}) == 1000
    # the keys seed independent threefry streams: draws from neighbouring keys uncorrelated
    draws = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (200,)))(keys))
    r = np.corrcoef(draws[:-1].ravel(), draws[1:].ravel())[0, 1]
    assert abs(r) < 4 / np.sqrt(draws[1:].size)  # 4 standard errors of a zero correlation


def test_batch_plan_covers_distinct_rows():
    idx, keys = _batch_plan(jax.random.key(4), 1000, 7, 128)
    idx = np.asarray(idx)
    assert idx.shape == (7, 128) and keys.shape == (7,)
    assert len(np.unique(idx)) == 7 * 128 and idx.min() >= 0 and idx.max() < 1000


def test_child_seeds_are_split_not_summed():
    # the streams of seed s must not reappear as those of seed s + 1 (what seed + i gives)
    a, b = _random.child_seeds(0, 50), _random.child_seeds(1, 50)
    assert len(set(a)) == 50 and not set(a) & set(b)
    assert a == _random.child_seeds(0, 50)
    assert all(0 <= s < 2**31 for s in a + b)
    assert _random.stream_seeds(3, ("x", "y")) == dict(
        zip("xy", _random.child_seeds(3, 2), strict=True)
    )
    with pytest.raises(ValueError, match="non-negative integer"):
        _random.child_seeds(-1, 2)
