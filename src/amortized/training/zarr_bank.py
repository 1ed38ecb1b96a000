"""Simulation banks as one chunked array store (zarr), written by ``sample_to_disk``.

``simulator.sample_to_disk(path, n, seed=..., chunk_size=1000)`` simulates ``n`` draws in
chunks (the chunks and seeds of ``simulator.sample(n, seed, chunk_size=...)``, so the store
holds exactly those draws) and writes each chunk as it comes, one zarr array per output
``(n, *shape)`` chunked by ``chunk_size`` rows; the store's attributes record the outputs'
names, shapes and dtypes, the seed, the chunk size and the library version. Memory stays
one chunk, whatever ``n``. With ``client=`` the chunks are simulated on Dask and written
here in order.

:class:`ZarrBank` reads such a store for ``fit_disk``: an epoch visits the store's chunks in
a random order (a training chunk is several stored chunks, its rows shuffled by the
training step), so each stored chunk is read once per epoch with one read per array,
instead of one file per simulation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "amortized-simulation-bank"


def is_zarr_store(root: str | os.PathLike) -> bool:
    root = Path(root)
    return (root / "zarr.json").is_file() or (root / ".zgroup").is_file()


def write_bank(simulator, path, n: int, seed: int | None, chunk_size: int, client, fixed) -> Path:
    """See the module docstring."""
    import zarr

    from .. import __version__
    from ..simulators.chunked import chunk_tasks, run_chunks

    path = Path(path)
    if path.exists():
        raise FileExistsError(
            f"sample_to_disk: {str(path)!r} exists; give a new path (a bank is written once)"
        )
    seed, chunks = chunk_tasks(simulator, n, seed, chunk_size, fixed)
    group = None
    for i, part in run_chunks(simulator, chunks, client, progress=False):
        if group is None:
            group = zarr.open_group(str(path), mode="w-")
            spec = {}
            for k, v in part.items():
                v = np.asarray(v)
                group.create_array(
                    k, shape=(n, *v.shape[1:]), chunks=(chunk_size, *v.shape[1:]), dtype=v.dtype
                )
                spec[k] = {"shape": list(v.shape[1:]), "dtype": str(v.dtype)}
            group.attrs["amortized"] = {
                "format": FORMAT, "version": __version__, "num": n, "seed": int(seed),
                "chunk_size": int(chunk_size), "outputs": spec,
            }  # fmt: skip
        for k, v in part.items():
            group[k][chunks[i].start : chunks[i].stop] = np.asarray(v)
    return path


class ZarrBank:
    """A store written by ``sample_to_disk``, read by ``fit_disk`` (the interface of
    :class:`~amortized.training.disk.DiskBank`)."""

    def __init__(self, root: str | os.PathLike, chunk_rows: int = 4096):
        import zarr

        self.root = Path(root)
        self.group = zarr.open_group(str(self.root), mode="r")
        meta = dict(self.group.attrs).get("amortized")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(
                f"fit_disk: {str(self.root)!r} is a zarr store but not a simulation bank "
                f"written by sample_to_disk (no 'amortized' attributes)"
            )
        self.meta = meta
        self.arrays = {k: self.group[k] for k in meta["outputs"]}
        self.spec = {
            k: (tuple(v["shape"]), np.dtype(v["dtype"])) for k, v in meta["outputs"].items()
        }
        self.stored_chunk = int(meta["chunk_size"])
        self.chunk_rows = int(chunk_rows)

    def __len__(self) -> int:
        return int(self.meta["num"])

    def load(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Rows ``indices``, reading each stored chunk they touch once and keeping one in
        memory at a time."""
        idx = np.asarray(indices, int)
        out = {k: np.empty((len(idx), *shape), dtype) for k, (shape, dtype) in self.spec.items()}
        size = self.stored_chunk
        blocks = idx // size
        for c in np.unique(blocks):
            where = np.flatnonzero(blocks == c)
            for k, arr in self.arrays.items():
                out[k][where] = arr[c * size : (c + 1) * size][idx[where] - c * size]
        return out

    def epoch_order(self, rows: np.ndarray, key) -> np.ndarray:
        """``rows`` grouped by stored chunk, the chunks in a random order (rows within a
        training chunk are shuffled by the training step)."""
        import jax

        blocks = rows // self.stored_chunk
        order = np.asarray(jax.random.permutation(key, int(blocks.max()) + 1))
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return rows[np.argsort(rank[blocks], kind="stable")]

    def chunks(self, order, chunk_rows, transform=lambda d: d) -> Iterator[Any]:
        from .disk import read_ahead

        return read_ahead(self.load, order, chunk_rows, transform)
