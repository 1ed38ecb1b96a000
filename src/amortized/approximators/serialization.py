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

The zip container (checksums, atomic writing) is :mod:`amortized.approximators.model_file`.
"""

from __future__ import annotations

import io
import json
import os
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
from .model_file import ModelFileError, check_format, read_checked_zip, sha256, write_zip_atomically
from .trained import Trained

FORMAT = "amortized-approximator"
FORMAT_VERSION = 2


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
    cls = registry[entry["class"]]
    # options added since the file was written, at the values that reproduce it
    net = cls(**{**getattr(cls, "legacy_config", {}), **entry["config"]})
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


def read_manifest(
    path: str | os.PathLike, data: bytes | None = None
) -> tuple[dict[str, Any], bytes]:
    """The manifest (with ``adapter``, ``stats``, ``condition_ranges`` and ``history``
    merged in) and the weights of the model file at ``path``, or of its content ``data`` (a
    member inside an ensemble file; ``path`` then names it in messages). Every entry is
    checked against its checksum first (:func:`read_checked_zip`)."""
    path = Path(path)
    entries = read_checked_zip(path, data, newest=FORMAT_VERSION)
    if "ensemble.json" in entries:
        raise ModelFileError(
            f"load: {str(path)!r} holds an ensemble of approximators; read it with "
            f"bf.load (an EnsembleWorkflow) or bf.approximators.EnsembleApproximator.load"
        )
    name = "manifest.json"
    try:
        manifest = json.loads(entries[name])
        check_format(manifest, path, FORMAT, FORMAT_VERSION)
        weights = entries["weights.eqx"]
        if manifest["format_version"] == 1:
            if sha256(weights) != manifest.get("weights_sha256"):
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
        nets = eqx.tree_deserialise_leaves(io.BytesIO(weights), skeleton)
    except Exception as e:
        raise ModelFileError(f"load: weights do not fit the saved network description: {e}") from e
    stats = {
        k: (jnp.asarray(v["mean"], jnp.float32), jnp.asarray(v["std"], jnp.float32))
        for k, v in manifest["stats"]["standardization"].items()
    }
    approx.state = Trained(
        nets,
        stats,
        {k: tuple(v) for k, v in manifest["shapes"].items()},
        condition_ranges_from_json(manifest["stats"]["condition_ranges"]),
        manifest.get("condition_keys"),
    )
    approx.history = manifest["history"]
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
