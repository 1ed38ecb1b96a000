"""A bank's simulations as fixed-size records in one temporary file, read back by index.

Reading a bank of one file per simulation costs an open and an unpickle per simulation
(microseconds of Python each, on the same cores the training step uses), every epoch. A
:class:`RowCache` keeps each simulation, once read, as one record of a structured dtype
(every array of the simulation at a fixed offset) in an anonymous temporary file, so that
later epochs gather a chunk's records with one indexed copy. Only the rows asked for are
mapped, for the time of the copy: resident memory stays that of a chunk, and the file's
pages stay in the operating system's page cache, not in the process.

The file is unlinked as soon as it is created where the system allows (it disappears with
the process, even a killed one), else removed when the cache is closed or collected.
"""

from __future__ import annotations

import errno
import mmap
import os
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def record_dtype(spec: Mapping[Any, tuple[tuple[int, ...], np.dtype]]) -> np.dtype | None:
    """The structured dtype of one simulation, ``{name: (shape, dtype)}`` in order, or
    ``None`` when a simulation cannot be a fixed-size record (a name that is not a string, an
    object or string array).

    >>> record_dtype({"theta": ((2,), np.dtype("float32")), "n": ((), np.dtype("int64"))})
    dtype([('theta', '<f4', (2,)), ('n', '<i8')])
    >>> record_dtype({"label": ((), np.dtype("O"))}) is None
    True
    """
    if not all(isinstance(k, str) for k in spec):
        return None
    if any(np.dtype(dt).hasobject or np.dtype(dt).kind in "USV" for _, dt in spec.values()):
        return None
    return np.dtype([(k, dt, shape) for k, (shape, dt) in spec.items()])


def _close(fd: int, path: str | None) -> None:
    os.close(fd)
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


def _reserve(fd: int, nbytes: int) -> None:
    """Give the file ``nbytes`` of disk space now: a full disk then fails here, with an
    ``OSError``, rather than as a bus error when a mapped page is written. Where the file
    system cannot reserve space, the file is only extended (sparse)."""
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except AttributeError:  # not a POSIX system
        os.ftruncate(fd, nbytes)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise
        os.ftruncate(fd, nbytes)


class RowCache:
    """``num_rows`` records of ``dtype`` in a temporary file in ``directory`` (default: the
    system's temporary folder); :attr:`filled` marks the rows :meth:`put` has written.
    Raises ``OSError`` when the file system has no room for all of them.

    >>> dt = record_dtype({"theta": ((2,), np.dtype("float32"))})
    >>> cache = RowCache(5, dt)
    >>> cache.put(np.array([3, 1]), {"theta": np.array([[3.0, 3.5], [1.0, 1.5]])})
    >>> cache.get(np.array([1, 3, 1]))["theta"]
    array([[1. , 1.5],
           [3. , 3.5],
           [1. , 1.5]], dtype=float32)
    >>> cache.filled.tolist()
    [False, True, False, True, False]
    >>> cache.close()
    """

    def __init__(self, num_rows: int, dtype: np.dtype, directory: str | None = None):
        self.dtype = np.dtype(dtype)
        self.num_rows = int(num_rows)
        self.nbytes = self.num_rows * self.dtype.itemsize
        fd, path = tempfile.mkstemp(prefix="amortized-bank-", suffix=".rows", dir=directory)
        try:
            os.unlink(path)
            path = None
        except OSError:  # a system that keeps open files: removed on close
            pass
        try:
            _reserve(fd, max(self.nbytes, 1))
        except OSError:
            _close(fd, path)
            raise
        self._fd = fd
        self._finalizer = weakref.finalize(self, _close, fd, path)
        self.filled = np.zeros(self.num_rows, bool)

    def _records(self, access: int):
        m = mmap.mmap(self._fd, max(self.nbytes, 1), access=access)
        return m, np.frombuffer(m, self.dtype, count=self.num_rows)

    def put(self, rows: Sequence[int] | np.ndarray, values: Mapping[str, np.ndarray]) -> None:
        """Write ``values`` ``{name: (len(rows), *shape)}`` as the records ``rows``."""
        rows = np.asarray(rows, np.int64)
        rec = np.empty(len(rows), self.dtype)
        for name in self.dtype.names:
            rec[name] = values[name]
        m, records = self._records(mmap.ACCESS_WRITE)
        try:
            records[rows] = rec
        finally:
            del records  # the mapping cannot close while an array views it
            m.close()
        self.filled[rows] = True

    def get(self, rows: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """The records ``rows`` as ``{name: (len(rows), *shape)}`` (all must be filled)."""
        rows = np.asarray(rows, np.int64)
        m, records = self._records(mmap.ACCESS_READ)
        try:
            rec = records[rows]
        finally:
            del records
            m.close()
        return {name: np.ascontiguousarray(rec[name]) for name in self.dtype.names}

    def close(self) -> None:
        """Close (and, where it still exists, remove) the file."""
        self._finalizer()
