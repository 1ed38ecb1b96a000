"""Saving and loading a trained approximator as one zip file.

Layout (format version 2): ``manifest.json`` (format name and version, library version,
network classes with their options and sizes, shapes, ``extra``), ``adapter.json`` (the
adapter's configuration), ``stats.json`` (learned standardization and the ranges of the
training conditions), ``history.json`` (training history), ``weights.eqx``
(Equinox-serialized parameters) and ``checksums.json`` (the SHA-256 of every other entry).
Loading checks every checksum first, so an edited or corrupted entry is refused by name: a
shifted standardization mean would move every posterior, not only a bad weight. Loading then
rebuilds each network from its options and sizes and reads the weights into it. Version 1
files (one manifest, only the weights checksummed) still load.

Writing goes to a temporary file in the target folder that replaces the target only once
complete, so an error never leaves a half-written model behind; the file gets the ordinary
permissions of a new file (``0666`` less the process umask), not the temporary file's 0600.
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
from ..networks import INFERENCE_NETWORKS, SUMMARY_NETWORKS, ScoringRuleNetwork
from ..networks.summary_base import SummaryNetwork
from .continuous import ContinuousApproximator
from .core import Networks

FORMAT = "amortized-approximator"
FORMAT_VERSION = 2
CHECKSUMS = "checksums.json"


class ModelFileError(ValueError):
    """A saved model is missing, corrupted, or from a newer format."""


def _network_entry(net) -> dict[str, Any] | None:
    if net is None:
        return None
    entry = {"class": type(net).__name__, "config": net.config}
    if isinstance(net, SummaryNetwork):
        return entry | {"input_shape": list(net.input_shape)}
    entry |= {"dim": net.dim, "cond_dim": net.cond_dim}
    if net.layout is not None:
        entry["layout"] = list(net.layout)
    return entry


def _rebuild(entry: dict[str, Any], registry: dict[str, type]):
    """(unbuilt network, built skeleton) from a manifest entry."""
    if entry["class"] not in registry:
        raise ModelFileError(f"load: unknown network {entry['class']!r}; known: {sorted(registry)}")
    net = registry[entry["class"]](**entry["config"])
    key = jax.random.key(0)
    if "input_shape" in entry:
        return net, net.build(tuple(entry["input_shape"]), key)
    return net, net.build(entry["dim"], entry["cond_dim"], key, entry.get("layout"))


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
    """The entries of a model file (without ``checksums.json``, which :func:`zip_bytes`
    adds): ``manifest.json``, ``adapter.json``, ``stats.json``, ``history.json`` and
    ``weights.eqx``."""
    approximator._require_trained("save")
    from .. import __version__

    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, approximator.nets)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "inference_network": _network_entry(approximator.nets.inference),
        "summary_network": _network_entry(approximator.nets.summary),
        "standardize": approximator.standardize_keys,
        "shapes": {k: list(v) for k, v in approximator._shapes.items()},
        "condition_keys": approximator.condition_keys,
        "approximator": {
            "class": type(approximator).__name__,
            "state": approximator.saved_state(),
        },
        "extra": extra or {},
    }
    stats = {
        "standardization": {
            k: {"mean": np.asarray(m).tolist(), "std": np.asarray(s).tolist()}
            for k, (m, s) in approximator.stats.items()
        },
        "condition_ranges": condition_ranges_to_json(approximator.condition_ranges),
    }
    adapter = None if approximator.adapter is None else approximator.adapter.get_config()

    def dump(obj) -> bytes:
        return json.dumps(obj, indent=1).encode()

    return {
        "manifest.json": dump(manifest),
        "adapter.json": dump(adapter),
        "stats.json": dump(stats),
        "history.json": dump(approximator.history),
        "weights.eqx": buf.getvalue(),
    }


def condition_ranges_to_json(ranges) -> dict[str, Any] | None:
    if ranges is None:
        return None
    return {k: {n: np.asarray(a).tolist() for n, a in v.items()} for k, v in ranges.items()}


def condition_ranges_from_json(obj) -> dict[str, dict[str, np.ndarray]] | None:
    if obj is None:
        return None
    return {k: {n: np.asarray(a, np.float64) for n, a in v.items()} for k, v in obj.items()}


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A deflated zip archive of ``{name: content}`` in memory, with ``checksums.json``
    holding the SHA-256 of every entry (see :func:`read_checked_zip`)."""
    checksums = {name: _sha256(content) for name, content in entries.items()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
        zf.writestr(CHECKSUMS, json.dumps(checksums, indent=1))
    return buf.getvalue()


def read_checked_zip(
    path: str | os.PathLike, data: bytes | None = None, newest: int = FORMAT_VERSION
) -> dict[str, bytes]:
    """Every entry of the zip at ``path`` (or of its content ``data``), ``{name: bytes}``,
    checked against ``checksums.json``: an entry whose content changed, one that is missing
    and one that no checksum lists are each refused by name. An archive without
    ``checksums.json`` is refused when it declares a format version from 2 to ``newest``
    (which always have one); a version 1 archive is returned as it is (its reader checks
    what that version recorded), and a newer one is left to the reader's version check."""
    path = Path(path)
    if data is None and not path.exists():
        raise FileNotFoundError(f"load: no saved model at {str(path)!r}")
    try:
        with zipfile.ZipFile(path if data is None else io.BytesIO(data)) as zf:
            entries = {name: zf.read(name) for name in zf.namelist()}
        checksums = json.loads(entries.pop(CHECKSUMS)) if CHECKSUMS in entries else None
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError) as e:
        raise ModelFileError(
            f"load: {str(path)!r} is not a readable amortized model file ({type(e).__name__}: "
            f"{e}); it may be corrupted or truncated"
        ) from e
    if checksums is None:
        version = _declared_version(entries)
        if not isinstance(version, int) or 2 <= version <= newest:
            raise ModelFileError(
                f"load: {str(path)!r} has no {CHECKSUMS}, so its content cannot be checked; "
                f"the file was modified or is not an amortized model file"
            )
        return entries
    if not isinstance(checksums, dict):
        raise ModelFileError(f"load: {str(path)!r} has a malformed {CHECKSUMS}")
    for name in sorted(set(checksums) | set(entries)):
        if name not in entries:
            raise ModelFileError(f"load: entry {name!r} of {str(path)!r} is missing")
        if name not in checksums:
            raise ModelFileError(
                f"load: entry {name!r} of {str(path)!r} was added after saving (no checksum "
                f"lists it); the file was modified"
            )
        if _sha256(entries[name]) != checksums[name]:
            raise ModelFileError(
                f"load: entry {name!r} of {str(path)!r} fails its SHA-256 checksum: it was "
                f"modified or corrupted after saving; refusing to load it"
            )
    return entries


def write_zip_atomically(path: str | os.PathLike, entries: dict[str, bytes]) -> Path:
    """Write the zip of ``entries`` to a temporary file in the target folder that replaces
    ``path`` only once complete and synced, so an error never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = zip_bytes(entries)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
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


def _declared_version(entries: dict[str, bytes]) -> int | None:
    """The ``format_version`` of the archive's manifest (None when unreadable)."""
    for name in ("manifest.json", "ensemble.json"):
        if name in entries:
            try:
                return json.loads(entries[name]).get("format_version")
            except (json.JSONDecodeError, AttributeError):
                return None
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    """The manifest (with ``adapter``, ``stats``, ``condition_ranges`` and ``history``
    merged in) and the weights of the model file at ``path``, or of its content ``data`` (a
    member inside an ensemble file; ``path`` then names it in messages). Every entry is
    checked against its checksum first (:func:`read_checked_zip`)."""
    path = Path(path)
    entries = read_checked_zip(path, data)
    if "ensemble.json" in entries:
        raise ModelFileError(
            f"load: {str(path)!r} holds an ensemble of approximators; read it with "
            f"bf.approximators.EnsembleApproximator.load"
        )
    name = "manifest.json"
    try:
        manifest = json.loads(entries[name])
        check_format(manifest, path, FORMAT, FORMAT_VERSION)
        weights = entries["weights.eqx"]
        if manifest["format_version"] == 1:
            if _sha256(weights) != manifest.get("weights_sha256"):
                raise ModelFileError(
                    f"load: the weights in {str(path)!r} fail their checksum; the file is corrupted"
                )
            manifest["stats"] = {"standardization": manifest["stats"], "condition_ranges": None}
            return manifest, weights
        for name, field in (
            ("adapter.json", "adapter"),
            ("stats.json", "stats"),
            ("history.json", "history"),
        ):
            manifest[field] = json.loads(entries[name])
    except KeyError as e:
        raise ModelFileError(
            f"load: {str(path)!r} is not a complete amortized model file (no {e} in {name})"
        ) from e
    except json.JSONDecodeError as e:
        raise ModelFileError(f"load: entry {name!r} of {str(path)!r} is not JSON: {e}") from e
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
    kind = _approximator_class(manifest.get("approximator"), network)
    approx = kind.from_parts(
        network,
        summary_network,
        adapter,
        manifest["standardize"] or None,
        (manifest.get("approximator") or {}).get("state", {}),
    )
    skeleton = Networks(inference, summary)
    try:
        approx.nets = eqx.tree_deserialise_leaves(io.BytesIO(weights), skeleton)
    except Exception as e:
        raise ModelFileError(f"load: weights do not fit the saved network description: {e}") from e
    approx.stats = {
        k: (jnp.asarray(v["mean"], jnp.float32), jnp.asarray(v["std"], jnp.float32))
        for k, v in manifest["stats"]["standardization"].items()
    }
    approx.condition_ranges = condition_ranges_from_json(manifest["stats"]["condition_ranges"])
    approx._shapes = {k: tuple(v) for k, v in manifest["shapes"].items()}
    approx.history = manifest["history"]
    approx.condition_keys = manifest.get("condition_keys")
    return approx, manifest.get("extra", {})


def _approximator_class(entry: dict[str, Any] | None, network) -> type:
    """The saved approximator's class (files before the entry existed: from the network)."""
    from .model_comparison import ModelComparisonApproximator  # these import this module
    from .ratio import RatioApproximator
    from .scoring_rule import ScoringRuleApproximator

    kinds = {
        c.__name__: c
        for c in (
            ContinuousApproximator,
            ScoringRuleApproximator,
            ModelComparisonApproximator,
            RatioApproximator,
        )
    }
    if entry is None:
        return (
            ScoringRuleApproximator
            if isinstance(network, ScoringRuleNetwork)
            else (ContinuousApproximator)
        )
    if entry.get("class") not in kinds:
        raise ModelFileError(
            f"load: unknown approximator {entry.get('class')!r}; known: {sorted(kinds)}"
        )
    return kinds[entry["class"]]
