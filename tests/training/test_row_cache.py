"""RowCache: records written by index come back bit for bit, in any order."""

import numpy as np

from amortized.training.row_cache import RowCache, record_dtype


def test_records_round_trip_in_any_order(tmp_path):
    rng = np.random.default_rng(0)
    spec = {
        "theta": ((3,), np.dtype("float32")),
        "x": ((4, 2), np.dtype("float64")),
        "n": ((), np.dtype("int64")),
    }
    n = 50
    ref = {
        "theta": rng.normal(size=(n, 3)).astype(np.float32),
        "x": rng.normal(size=(n, 4, 2)),
        "n": rng.integers(0, 10**9, n),
    }
    cache = RowCache(n, record_dtype(spec), str(tmp_path))
    # written in two shuffled halves, read in another order with repeats
    order = rng.permutation(n)
    for part in (order[:25], order[25:]):
        cache.put(part, {k: v[part] for k, v in ref.items()})
    assert cache.filled.all()
    rows = rng.integers(0, n, 80)
    got = cache.get(rows)
    for k, v in ref.items():
        assert got[k].dtype == v.dtype and got[k].flags.c_contiguous
        np.testing.assert_array_equal(got[k], v[rows])
    cache.close()
    # the file was unlinked when it was made: nothing is left in its folder
    assert list(tmp_path.iterdir()) == []


def test_only_fixed_size_arrays_make_records():
    assert record_dtype({"s": ((), np.dtype("U3"))}) is None
    assert record_dtype({0: ((2,), np.dtype("float32"))}) is None
    assert record_dtype({"a": ((2,), np.dtype("float32"))}).itemsize == 8
