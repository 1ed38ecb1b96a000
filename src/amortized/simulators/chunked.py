"""Simulation in chunks with independent seeds, locally or on a Dask cluster.

``simulator.sample(n, seed=..., chunk_size=c)`` splits the ``n`` draws into chunks of ``c``
(the last one shorter); chunk ``i`` is simulated by ``simulator.sample(size_i,
seed=seed_i)`` with ``seed_i`` the ``i``-th child of ``seed`` (:func:`amortized._random.
child_seeds`: split from one JAX key, never ``seed + i``), and the chunks are concatenated
in order. With ``client=`` (a ``dask.distributed.Client``) the same chunks run as tasks on
the cluster. The draws depend only on ``seed`` and ``chunk_size``, never on the engine or
the number of workers: a local run with the same seed and chunk size gives the same arrays.

Dask re-runs the task of a worker that dies (a chunk is a pure function of its seed), so
nothing is lost or duplicated; the results are gathered in chunk order. To use a real
cluster, connect a client to its scheduler (``Client("tcp://scheduler:8786")``, or one of
the dask-jobqueue / dask-kubernetes cluster classes) and pass it; the simulator and its
functions are sent to the workers with cloudpickle, so they must be importable there or
defined in the script.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .._random import child_seeds

#: chunk size of a Dask run when none is given (not the number of workers, on purpose: the
#: draws must not depend on the cluster)
DEFAULT_CHUNK_SIZE = 1000


def plan(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` rows of each chunk."""
    return [(s, min(n, s + chunk_size)) for s in range(0, n, chunk_size)]


def check_sizes(batch_shape: Any, chunk_size: Any) -> tuple[int, int]:
    """``(n, chunk_size)`` checked (``chunk_size`` None: the default)."""
    if isinstance(batch_shape, tuple) and len(batch_shape) == 1:
        batch_shape = batch_shape[0]
    if isinstance(batch_shape, bool) or not isinstance(batch_shape, int | np.integer):
        raise ValueError(
            f"Simulator.sample: chunked or distributed simulation takes a number of draws, "
            f"got batch_shape {batch_shape!r}"
        )
    if int(batch_shape) <= 0:
        raise ValueError(f"Simulator.sample: batch_shape must be positive, got {batch_shape}")
    if chunk_size is None:
        chunk_size = DEFAULT_CHUNK_SIZE
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int | np.integer)
        or (chunk_size <= 0)
    ):
        raise ValueError(
            f"Simulator.sample: chunk_size must be a positive integer, got {chunk_size!r}"
        )
    return int(batch_shape), int(chunk_size)


def _run_chunk(simulator, size: int, seed: int, fixed: Mapping[str, Any]) -> dict:
    return simulator.sample(size, seed=seed, **fixed)


@dataclass(frozen=True)
class Chunk:
    """One chunk of a chunked simulation: its rows ``start:stop``, its own seed and its
    rows of the fixed values."""

    start: int
    stop: int
    seed: int
    fixed: dict[str, Any]


def chunk_tasks(
    simulator, n: int, seed: int | None, chunk_size: int, fixed: Mapping[str, Any]
) -> tuple[int, list[Chunk]]:
    """The seed (drawn when None) and the chunks of ``n`` draws: chunk ``i`` gets the
    ``i``-th child of the seed, and the rows of ``fixed`` values with one per draw."""
    if simulator.varies_per_call:
        raise ValueError(
            "Simulator.sample: this simulator draws some values once per sample call (a "
            "meta_fn, e.g. the number of observations), so chunks would disagree in shape; "
            "simulate it with sample_ragged, or fix those values"
        )
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    rows = plan(n, chunk_size)
    seeds = child_seeds(int(seed), len(rows))
    return int(seed), [
        Chunk(a, b, s, {k: _rows(v, n, a, b) for k, v in fixed.items()})
        for (a, b), s in zip(rows, seeds, strict=True)
    ]


def run_chunks(
    simulator, chunks: list[Chunk], client: Any, progress: bool = True
) -> Iterator[tuple[int, dict]]:
    """``(index, draws)`` of each chunk: in order locally, as they finish on Dask (each
    chunk's result released once yielded, so memory holds what the caller keeps)."""
    bar = tqdm(
        total=len(chunks),
        desc="simulating" if client is None else "simulating (dask)",
        unit="chunk",
        disable=not progress or len(chunks) < 2,
    )
    if client is None:
        for i, c in enumerate(chunks):
            yield i, _run_chunk(simulator, c.stop - c.start, c.seed, c.fixed)
            bar.update()
        bar.close()
        return
    check_client(client)
    from distributed import as_completed

    # a key of its own (hash=False): with the content's hash, two runs share one key and
    # the first run's release can drop the data under the second's tasks
    sim = client.scatter(simulator, broadcast=True, hash=False)
    futures = {
        client.submit(_run_chunk, sim, c.stop - c.start, c.seed, c.fixed, pure=False): i
        for i, c in enumerate(chunks)
    }
    for fut in as_completed(list(futures)):
        yield futures[fut], fut.result()
        fut.release()
        bar.update()
    bar.close()


def sample_in_chunks(
    simulator,
    batch_shape: Any,
    seed: int | None,
    chunk_size: int | None,
    client: Any,
    fixed: Mapping[str, Any],
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """``simulator.sample(batch_shape, seed, **fixed)`` in chunks (see the module
    docstring); ``fixed`` arrays with ``batch_shape`` rows are split with the chunks."""
    n, chunk_size = check_sizes(batch_shape, chunk_size)
    _, chunks = chunk_tasks(simulator, n, seed, chunk_size, fixed)
    parts: list[dict] = [{}] * len(chunks)
    for i, part in run_chunks(simulator, chunks, client, progress):
        parts[i] = part
    keys = list(parts[0])
    for i, p in enumerate(parts):
        if list(p) != keys:
            raise ValueError(
                f"Simulator.sample: chunk {i} returned keys {sorted(p)}, chunk 0 {sorted(keys)}"
            )
    return {k: np.concatenate([np.asarray(p[k]) for p in parts], axis=0) for k in keys}


def _rows(value: Any, n: int, a: int, b: int) -> Any:
    """A fixed value's rows ``a:b`` when it has one per draw, else the value itself."""
    arr = np.asarray(value) if isinstance(value, np.ndarray | list | tuple) else None
    if arr is not None and arr.ndim >= 1 and arr.shape[0] == n:
        return arr[a:b]
    return value


def check_client(client) -> None:
    """Raise unless ``client`` is a running Dask client."""
    status = getattr(client, "status", None)
    if status != "running":
        raise ValueError(
            f"Simulator.sample: the Dask client is not running (status {status!r}); "
            f"connect a new dask.distributed.Client"
        )
