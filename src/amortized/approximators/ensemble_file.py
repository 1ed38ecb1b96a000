"""An ensemble's model file: one zip with ``ensemble.json`` (format, weights, member
names, a workflow's ``extra``) and each member's own model file inside, written atomically
and checksummed as :func:`~amortized.approximators.serialization.save_approximator`
writes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "amortized-ensemble"
FORMAT_VERSION = 2  # 2: checksums.json covers every entry


def save(
    members: Sequence[Any], weights: np.ndarray, path: str | os.PathLike, extra: Mapping | None
) -> Path:
    """Write trained ``members`` and their ``weights`` to ``path``; the path written."""
    from .model_file import write_zip_atomically, zip_bytes
    from .serialization import approximator_entries

    for i, m in enumerate(members):
        if not m.is_trained:
            raise RuntimeError(f"save: ensemble member {i} is not trained; call fit first")
    names = [f"member_{i}.amz" for i in range(len(members))]
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "weights": np.asarray(weights).tolist(),
        "members": names,
        "extra": dict(extra or {}),
    }
    entries = {"ensemble.json": json.dumps(manifest, indent=1).encode()}
    for name, m in zip(names, members, strict=True):
        entries[name] = zip_bytes(approximator_entries(m))
    return write_zip_atomically(path, entries)


def load(path: str | os.PathLike) -> tuple[list, list[float], dict]:
    """The members, weights and ``extra`` of an ensemble written by :func:`save`."""
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
    return members, manifest["weights"], dict(manifest.get("extra", {}))
