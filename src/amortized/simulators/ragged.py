"""Datasets of different sizes in one array: pad along the set/time axis and mark the
observed rows in a mask.

A ``meta_fn`` (e.g. a random number of observations N) is drawn once per ``sample`` call, so
every draw of one call shares it. To train on many sizes, simulate in chunks (one meta draw
per chunk) and pad the chunks into one array: ``Simulator.sample_ragged`` does this with
:func:`pad_ragged`. Padded lengths are rounded up to a few buckets (multiples of a quarter of
the largest power of two below the longest length), so online training with a fresh N per
batch compiles a handful of shapes rather than one per N.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .simulator import SimulationError


def bucket_length(n: int) -> int:
    """``n`` rounded up to a multiple of ``2^(floor(log2 n) - 2)`` (at most 25% padding):
    1..8 stay, 100 -> 112, 200 -> 224."""
    if n <= 8:
        return int(n)
    step = 2 ** (int(np.floor(np.log2(n))) - 2)
    return int(-(-n // step) * step)


def pad_ragged(
    chunks: Sequence[Mapping[str, np.ndarray]],
    mask_key: str = "mask",
    pad_to: int | None = None,
) -> dict[str, np.ndarray]:
    """Concatenate ``chunks`` (dicts of arrays with the batch axis first) along the batch axis.

    Keys whose axis 1 differs between chunks are padded with zeros along axis 1 to
    ``pad_to`` (default: :func:`bucket_length` of the longest); ``mask_key`` ``(rows, L)``
    then holds 1 for observed and 0 for padded positions. All varying keys must have the same
    length within a chunk (they describe the same observations).
    """
    if not chunks:
        raise ValueError("pad_ragged: no chunks")
    keys = list(chunks[0])
    for c in chunks[1:]:
        if list(c) != keys:
            raise SimulationError(f"pad_ragged: chunks have different keys: {keys} vs {list(c)}")
    if mask_key in keys:
        raise SimulationError(f"pad_ragged: the simulator already outputs {mask_key!r}")
    varying = [k for k in keys if len({np.shape(c[k])[1:] for c in chunks}) > 1]
    for k in varying:
        shapes = {np.shape(c[k])[2:] for c in chunks}
        if len(shapes) > 1 or any(np.ndim(c[k]) < 2 for c in chunks):
            raise SimulationError(
                f"pad_ragged: {k!r} varies in more than its axis 1 between chunks: "
                f"{sorted({np.shape(c[k]) for c in chunks})}"
            )
    lengths = []
    for i, c in enumerate(chunks):
        ls = {k: np.shape(c[k])[1] for k in varying}
        if len(set(ls.values())) > 1:
            raise SimulationError(
                f"pad_ragged: inconsistent lengths between keys of one dataset in chunk {i}: "
                f"{ls}; keys that vary with the size must share it"
            )
        lengths.append(next(iter(ls.values()), 0))
    out = {}
    if not varying:
        return {k: np.concatenate([np.asarray(c[k]) for c in chunks]) for k in keys}
    longest = max(lengths)
    target = bucket_length(longest) if pad_to is None else int(pad_to)
    if target < longest:
        raise ValueError(f"pad_ragged: pad_to={pad_to} is shorter than the longest ({longest})")
    for k in keys:
        parts = []
        for c in chunks:
            a = np.asarray(c[k])
            if k in varying:
                widths = [(0, 0), (0, target - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
                a = np.pad(a, widths)
            parts.append(a)
        out[k] = np.concatenate(parts)
    out[mask_key] = np.concatenate(
        [
            np.broadcast_to(
                (np.arange(target) < n).astype(np.float32), (len(c[varying[0]]), target)
            )
            for c, n in zip(chunks, lengths, strict=True)
        ]
    )
    return out
