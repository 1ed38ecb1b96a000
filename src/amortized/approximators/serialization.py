"""Saving and loading a trained approximator as one zip file.

Layout: ``manifest.json`` (format name and version, library version, network classes with
their options and sizes, adapter configuration, standardization statistics, training history,
SHA-256 of the weights) and ``weights.eqx`` (Equinox-serialized parameters). Loading rebuilds
each network from its options and sizes, then reads the weights into it.

Writing goes to a temporary file in the target folder that replaces the target only once
complete, so an error never leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..adapters import Adapter
from ..networks import INFERENCE_NETWORKS, SUMMARY_NETWORKS
from ..networks.summary_base import SummaryNetwork
from .continuous import ContinuousApproximator
from .core import Networks

FORMAT = "amortized-approximator"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A saved model is missing, corrupted, or from a newer format."""


def _network_entry(net) -> dict[str, Any] | None:
    if net is None:
        return None
    entry = {"class": type(net).__name__, "config": net.config}
    if isinstance(net, SummaryNetwork):
        return entry | {"input_shape": list(net.input_shape)}
    return entry | {"dim": net.dim, "cond_dim": net.cond_dim}


def _rebuild(entry: dict[str, Any], registry: dict[str, type]):
    """(unbuilt network, built skeleton) from a manifest entry."""
    if entry["class"] not in registry:
        raise ModelFileError(f"load: unknown network {entry['class']!r}; known: {sorted(registry)}")
    net = registry[entry["class"]](**entry["config"])
    key = jax.random.key(0)
    if "input_shape" in entry:
        return net, net.build(tuple(entry["input_shape"]), key)
    return net, net.build(entry["dim"], entry["cond_dim"], key)


def save_approximator(
    approximator: ContinuousApproximator,
    path: str | os.PathLike,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``approximator`` (trained) to ``path``; returns the path."""
    return write_zip_atomically(path, approximator_entries(approximator, extra))


def approximator_entries(
    approximator: ContinuousApproximator, extra: dict[str, Any] | None = None
) -> dict[str, bytes]:
    """The files of a model file: ``manifest.json`` and ``weights.eqx``."""
    approximator._require_trained("save")
    from .. import __version__

    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, approximator.nets)
    weights = buf.getvalue()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "inference_network": _network_entry(approximator.nets.inference),
        "summary_network": _network_entry(approximator.nets.summary),
        "adapter": None if approximator.adapter is None else approximator.adapter.get_config(),
        "standardize": approximator.standardize_keys,
        "stats": {
            k: {"mean": np.asarray(m).tolist(), "std": np.asarray(s).tolist()}
            for k, (m, s) in approximator.stats.items()
        },
        "shapes": {k: list(v) for k, v in approximator._shapes.items()},
        "history": approximator.history,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "extra": extra or {},
    }
    return {"manifest.json": json.dumps(manifest, indent=1).encode(), "weights.eqx": weights}


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A deflated zip archive of ``{name: content}`` in memory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return buf.getvalue()


def write_zip_atomically(path: str | os.PathLike, entries: dict[str, bytes]) -> Path:
    """Write the zip of ``entries`` to a temporary file in the target folder that replaces
    ``path`` only once complete and synced, so an error never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = zip_bytes(entries)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def check_format(manifest: dict[str, Any], path: Path, fmt: str, newest: int) -> None:
    """Raise a :class:`ModelFileError` unless ``manifest`` declares format ``fmt`` at a
    version this library reads (at most ``newest``)."""
    if manifest.get("format") != fmt:
        raise ModelFileError(
            f"load: {str(path)!r} has format {manifest.get('format')!r}, expected {fmt!r}"
        )
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > newest:
        raise ModelFileError(
            f"load: {str(path)!r} uses format version {version}; this amortized reads versions "
            f"up to {newest}. Upgrade amortized to load it."
        )


def read_manifest(
    path: str | os.PathLike, data: bytes | None = None
) -> tuple[dict[str, Any], bytes]:
    """The manifest and weights of the model file at ``path``, or of its content ``data``
    (a member inside an ensemble file; ``path`` then names it in messages)."""
    path = Path(path)
    if data is None and not path.exists():
        raise FileNotFoundError(f"load: no saved model at {str(path)!r}")
    try:
        with zipfile.ZipFile(path if data is None else io.BytesIO(data)) as zf:
            if "ensemble.json" in zf.namelist():
                raise ModelFileError(
                    f"load: {str(path)!r} holds an ensemble of approximators; read it with "
                    f"bf.approximators.EnsembleApproximator.load"
                )
            manifest = json.loads(zf.read("manifest.json"))
            weights = zf.read("weights.eqx")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as e:
        raise ModelFileError(
            f"load: {str(path)!r} is not a readable amortized model file ({type(e).__name__}: "
            f"{e}); it may be corrupted or truncated"
        ) from e
    check_format(manifest, path, FORMAT, FORMAT_VERSION)
    if hashlib.sha256(weights).hexdigest() != manifest.get("weights_sha256"):
        raise ModelFileError(
            f"load: the weights in {str(path)!r} fail their checksum; the file is corrupted"
        )
    return manifest, weights


def load_approximator(
    path: str | os.PathLike, data: bytes | None = None
) -> tuple[ContinuousApproximator, dict[str, Any]]:
    """Rebuild a saved approximator (from ``path``, or from the file content ``data`` as
    :func:`read_manifest` takes it); returns it and the manifest's ``extra`` dict."""
    manifest, weights = read_manifest(path, data)
    network, inference = _rebuild(manifest["inference_network"], INFERENCE_NETWORKS)
    summary_network = summary = None
    if manifest.get("summary_network"):
        summary_network, summary = _rebuild(manifest["summary_network"], SUMMARY_NETWORKS)
    adapter = None if manifest["adapter"] is None else Adapter.from_config(manifest["adapter"])
    approx = ContinuousApproximator(
        inference_network=network,
        summary_network=summary_network,
        adapter=adapter,
        standardize=manifest["standardize"] or None,
    )
    skeleton = Networks(inference, summary)
    try:
        approx.nets = eqx.tree_deserialise_leaves(io.BytesIO(weights), skeleton)
    except Exception as e:
        raise ModelFileError(f"load: weights do not fit the saved network description: {e}") from e
    approx.stats = {
        k: (jnp.asarray(v["mean"], jnp.float32), jnp.asarray(v["std"], jnp.float32))
        for k, v in manifest["stats"].items()
    }
    approx._shapes = {k: tuple(v) for k, v in manifest["shapes"].items()}
    approx.history = manifest["history"]
    return approx, manifest.get("extra", {})
