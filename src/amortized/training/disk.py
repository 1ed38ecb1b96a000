"""Simulation banks on disk: one file per simulation, loaded lazily in shuffled chunks.

BayesFlow's convention: a folder of files, each holding one complete simulation (a dict of
arrays without a batch axis; ``pickle`` by default, any format through ``load_fn``). A
:class:`DiskBank` lists the files, reads the first to learn the keys, shapes and dtypes,
and checks every file it loads against them (a file that differs is named). Training reads
the bank in chunks of ``chunk_rows`` simulations in a new random order each epoch; the next
chunk is read by a background thread while the compiled steps train on the current one,
so memory stays that of two chunks, whatever the size of the bank.

Opening and unpickling a file costs microseconds of Python on the cores that train, every
epoch; with ``cache`` (the default for the default unpickler), each simulation read is kept
as a fixed-size record in one temporary file (:class:`~amortized.training.row_cache.
RowCache`), and later epochs gather their chunks from it in the same random order. The
values are those of the files, so training is the same with or without it; files changed
during training are not read again.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .row_cache import RowCache, record_dtype


def pickle_load(path: str | os.PathLike) -> Any:
    """The object pickled in ``path`` (the default ``load_fn``)."""
    # the file's bytes in one read, then unpickled: a third cheaper per small file than
    # unpickling from a buffered file object (an epoch without a cache reads every file)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        left = os.fstat(fd).st_size
        parts = []
        # one read, unless the system returns less (files of over 2 GiB on Linux)
        while left > 0 and (part := os.read(fd, left)):
            parts.append(part)
            left -= len(part)
    finally:
        os.close(fd)
    return pickle.loads(parts[0] if len(parts) == 1 else b"".join(parts))


class DiskBank:
    """The simulations in ``root`` matching ``pattern`` (sorted by name).

    ``load_fn(path) -> {name: array}`` reads one simulation (default: unpickle).
    ``cache``: keep the simulations read in a temporary file of fixed-size records and read
    them from there the next time (``None``: with the default ``load_fn`` only, as another
    ``load_fn`` may draw something new each call; ``True``: also with a ``load_fn``;
    ``False``: read the files each time; a folder: the cache's file goes there instead of
    the system's temporary folder; where that folder is held in memory, as a ``tmpfs``
    often is, the cache takes memory outside the process: give a folder on disk). Without
    room for it, a warning says so and the files are read each time.

    >>> import tempfile, pickle
    >>> root = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     with open(f"{root}/sim_{i}.pkl", "wb") as fh:
    ...         pickle.dump({"theta": np.full(2, i), "x": np.zeros((4, 1))}, fh)
    >>> bank = DiskBank(root)
    >>> len(bank), bank.spec["x"]
    (3, ((4, 1), dtype('float64')))
    >>> bank.load([2, 0])["theta"][:, 0]
    array([2, 0])
    """

    def __init__(
        self,
        root: str | os.PathLike,
        pattern: str = "*.pkl",
        load_fn: Callable[[str], Mapping[str, Any]] | None = None,
        chunk_rows: int = 4096,
        cache: bool | str | os.PathLike | None = None,
    ):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"fit_disk: no folder {str(root)!r}")
        self.root, self.pattern = root, pattern
        self.files: list[Path] = sorted(p for p in root.glob(pattern) if p.is_file())
        if not self.files:
            raise ValueError(
                f"fit_disk: no files match {pattern!r} in {str(root)!r}; write one file per "
                f"simulation there (e.g. pickled dicts of arrays), or pass another pattern"
            )
        self.load_fn = load_fn or pickle_load
        #: simulations read per chunk in training
        self.chunk_rows = int(chunk_rows)
        first = self._read(self.files[0])
        #: ``{name: (shape, dtype)}`` of one simulation, from the first file
        self.spec = {k: (np.shape(v), np.asarray(v).dtype) for k, v in first.items()}
        self._paths = [str(p) for p in self.files]
        self._cache = self._make_cache(cache, load_fn is None)

    def _make_cache(self, cache, default: bool) -> RowCache | None:
        if cache is not None and not isinstance(cache, bool | str | os.PathLike):
            raise TypeError(f"fit_disk: cache must be None, True, False or a folder, got {cache!r}")
        if cache is False or (cache is None and not default):
            return None
        dtype = record_dtype(self.spec)
        if dtype is None:
            if cache is None:  # simulations that are not fixed-size records: files each epoch
                return None
            dtypes = {k: str(d) for k, (_, d) in self.spec.items()}
            raise ValueError(
                f"fit_disk: cache={cache!r}, but the simulations in {str(self.root)!r} are not "
                f"fixed-size arrays (keys and dtypes {dtypes}); pass cache=False"
            )
        directory = None if cache in (None, True) else os.fspath(cache)
        try:
            return RowCache(len(self.files), dtype, directory)
        except OSError as e:
            warnings.warn(
                f"fit_disk: no room for a cache of the bank ({dtype.itemsize * len(self.files):,} "
                f"bytes; {e}); every epoch reads all {len(self.files):,} files. Pass "
                f"cache=<a folder with room> or cache=False.",
                stacklevel=4,
            )
            return None

    def close(self) -> None:
        """Drop the cache (its file is removed); later loads read the files."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, path: str | Path) -> Mapping[str, Any]:
        try:
            out = self.load_fn(str(path))
        except Exception as e:
            raise ValueError(
                f"fit_disk: cannot load {str(path)!r} ({type(e).__name__}: {e})"
            ) from e
        if not isinstance(out, Mapping):
            raise TypeError(
                f"fit_disk: {str(path)!r} holds a {type(out).__name__}; each file must hold "
                f"one simulation as a dict of arrays (or give a load_fn that returns one)"
            )
        return out

    def _checked(self, path: str) -> Mapping[str, Any]:
        # the cheapest checks that catch a file unlike the first (about a microsecond of a
        # file's 6-12: an epoch without the cache reads every file of the bank)
        out = self._read(path)
        if out.keys() != self.spec.keys():
            raise ValueError(
                f"fit_disk: {str(path)!r} has keys {sorted(out)}; the bank's first file "
                f"{self.files[0].name!r} has {sorted(self.spec)}"
            )
        for k, (shape, _) in self.spec.items():
            if np.shape(out[k]) != shape:
                raise ValueError(
                    f"fit_disk: {str(path)!r}: {k!r} has shape {np.shape(out[k])}; the bank's "
                    f"first file {self.files[0].name!r} has {shape}"
                )
        return out

    def load(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """The simulations ``indices`` stacked, ``{name: (len(indices), *shape)}``: from the
        cache where they have been read before, else from their files (and then cached)."""
        idx = np.asarray(indices, np.int64).reshape(-1)
        if self._cache is None:
            return self._read_files(idx)
        missing = idx[~self._cache.filled[idx]]
        if len(missing):
            self._cache.put(missing, self._read_files(missing))
        return self._cache.get(idx)

    def _read_files(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        # one loop in one thread: unpickling holds the GIL, and a pool of threads made it
        # 4x slower per file (contention), so parallelism comes from reading the next chunk
        # while the compiled steps (which release the GIL) train on the current one
        rows = [self._checked(self._paths[i]) for i in idx.tolist()]
        return {
            k: np.asarray([r[k] for r in rows], dtype=dtype) for k, (_, dtype) in self.spec.items()
        }

    def epoch_order(self, rows: np.ndarray, key) -> np.ndarray:
        """``rows`` in a random order (``key``)."""
        import jax

        return rows[np.asarray(jax.random.permutation(key, len(rows)))]

    def chunks(
        self,
        order: Sequence[int],
        chunk_rows: int,
        transform: Callable[[dict[str, np.ndarray]], Any] = lambda d: d,
    ) -> Iterator[Any]:
        """``transform`` of the simulations ``order`` in chunks of ``chunk_rows``
        (:func:`read_ahead`)."""
        return read_ahead(self.load, order, chunk_rows, transform)


def read_ahead(
    load: Callable[[Sequence[int]], dict[str, np.ndarray]],
    order: Sequence[int],
    chunk_rows: int,
    transform: Callable[[dict[str, np.ndarray]], Any] = lambda d: d,
) -> Iterator[Any]:
    """``transform(load(rows))`` for the rows of ``order`` in chunks of ``chunk_rows``, the
    next chunk read (and transformed) in a background thread while the caller uses the
    current one."""
    starts = range(0, len(order), chunk_rows)
    if not starts:
        return
    with ThreadPoolExecutor(1) as reader:

        def read(start: int):
            return reader.submit(lambda: transform(load(order[start : start + chunk_rows])))

        pending = read(starts[0])
        for nxt in list(starts[1:]) + [None]:
            current = pending.result()
            if nxt is not None:
                pending = read(nxt)
            yield current
