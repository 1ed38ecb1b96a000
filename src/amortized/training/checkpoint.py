"""Checkpoints of a training run, and resuming a run that was killed.

Every ``every`` epochs the training loop writes everything it needs to go on: the networks,
the optimizer state, the best epoch's networks, the PRNG keys, the history and the
bookkeeping of early stopping, and the run's root key (which fixes the held-out split and
each online epoch's simulations). A run resumed from a checkpoint therefore takes the same
steps on the same batches as the run that wrote it, and ends with the same weights as a run
that was never interrupted.

A checkpoint is one zip file (``checkpoint-EEEEEE.amc``, the epochs done) written atomically
and checked by SHA-256 on reading (:mod:`amortized.approximators.model_file`): a kill during
the write leaves the previous checkpoint in place, and a truncated or corrupted file is
detected; loading then warns and falls back to the previous one. The newest ``keep``
checkpoints are kept. A checkpoint records what it was written for (the networks, the
shapes of their inputs and the training settings); resuming another model or other settings
from it raises an error that names the difference.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

SUFFIX = ".amc"
PREFIX = "checkpoint-"


class CheckpointWarning(UserWarning):
    """A checkpoint could not be read; an older one (or a fresh start) was used."""


@dataclass(frozen=True)
class Saved:
    """A checkpoint read back: ``arrays`` (the serialized pytree, read against a template
    by :meth:`restore`) and ``meta`` (JSON: history, counters, root key, fingerprint)."""

    path: Path
    arrays: bytes
    meta: dict[str, Any]

    def restore(self, template: Any) -> Any:
        """The saved pytree, in the structure of ``template``."""
        return eqx.tree_deserialise_leaves(io.BytesIO(self.arrays), template)


@dataclass(frozen=True)
class Checkpoints:
    """Where and how often a training run writes checkpoints.

    ``directory``: the folder (created on the first write); ``every``: epochs between
    checkpoints; ``keep``: how many of the newest to keep; ``fingerprint``: what the run
    is (JSON), compared on resume."""

    directory: Path
    every: int = 1
    keep: int = 2
    fingerprint: dict[str, Any] | None = None

    def due(self, epochs_done: int) -> bool:
        return epochs_done % self.every == 0

    def paths(self) -> list[Path]:
        """Checkpoint files, newest (most epochs done) first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"{PREFIX}*{SUFFIX}"), reverse=True)

    def write(self, epochs_done: int, tree: Any, meta: dict[str, Any]) -> Path:
        """Write a checkpoint after ``epochs_done`` epochs (atomically), then delete all but
        the newest ``keep``. With several processes (``jax.distributed``), which all hold
        the same state, the first one writes."""
        from ..approximators.model_file import write_zip_atomically

        path = self.directory / f"{PREFIX}{epochs_done:06d}{SUFFIX}"
        if jax.process_index() != 0:
            return path

        buf = io.BytesIO()
        eqx.tree_serialise_leaves(buf, tree)
        meta = {**meta, "fingerprint": self.fingerprint, "epochs_done": int(epochs_done)}
        entries = {"state.eqx": buf.getvalue(), "meta.json": _dumps(meta).encode()}
        write_zip_atomically(path, entries)
        for old in self.paths()[self.keep :]:
            old.unlink(missing_ok=True)
        return path

    def latest(self) -> Saved | None:
        """The newest readable checkpoint (None when there is none); unreadable ones are
        skipped with a :class:`CheckpointWarning`."""
        from ..approximators.model_file import read_checked_zip

        for path in self.paths():
            try:
                entries = read_checked_zip(path, newest=1)
                meta = json.loads(entries["meta.json"])
                saved = Saved(path, entries["state.eqx"], meta)
            except (ValueError, KeyError, OSError) as e:
                warnings.warn(
                    f"resume: checkpoint {str(path)!r} is unreadable ({type(e).__name__}: "
                    f"{e}); trying the previous one",
                    CheckpointWarning,
                    stacklevel=3,
                )
                continue
            return saved
        return None

    def check(self, saved: Saved) -> None:
        """Raise when ``saved`` was written for another model or other settings than this
        run's ``fingerprint``."""
        theirs = saved.meta.get("fingerprint")
        if self.fingerprint is None or theirs == _roundtrip(self.fingerprint):
            return
        ours = _roundtrip(self.fingerprint)
        differ = sorted(
            k for k in set(ours) | set(theirs or {}) if ours.get(k) != (theirs or {}).get(k)
        )
        details = "; ".join(
            f"{k}: checkpoint {(theirs or {}).get(k)!r}, this run {ours.get(k)!r}" for k in differ
        )
        raise ValueError(
            f"resume: checkpoint {str(saved.path)!r} was written by another model or other "
            f"training settings ({details}); resume with the same model and settings, or "
            f"use another checkpoint_dir"
        )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default)


def _roundtrip(obj: Any) -> Any:
    return json.loads(_dumps(obj))


def _json_default(v: Any):
    if isinstance(v, np.ndarray | jax.Array):
        return np.asarray(v).tolist()
    if isinstance(v, np.integer | np.floating | np.bool_):
        return v.item()
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(f"checkpoint: cannot store {type(v).__name__} in JSON")


def start(
    checkpoint_dir: str | os.PathLike | None, every: int, resume: bool, seed: Any
) -> tuple[Checkpoints | None, Saved | None, jax.Array]:
    """Where a fit writes checkpoints (None without ``checkpoint_dir``), the checkpoint it
    resumes from (None for a fresh start: ``resume=False``, or no checkpoint yet), and
    the fit's root PRNG key: the resumed run's (it fixes the held-out split and each
    online epoch's simulations), else the key of ``seed``."""
    from .._validation import as_key

    if checkpoint_dir is None:
        if resume:
            raise ValueError("fit: resume=True needs the checkpoint_dir of the run to resume")
        return None, None, as_key(seed)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"fit: checkpoint_every must be a positive integer, got {every!r}")
    ckpt = Checkpoints(Path(checkpoint_dir), int(every))
    saved = ckpt.latest() if resume else None
    if saved is None:
        return ckpt, None, as_key(seed)
    words = np.asarray(saved.meta["root_key"], np.uint32)
    return ckpt, saved, jax.random.wrap_key_data(words)


def run_meta(root: jax.Array) -> dict[str, Any]:
    """What a checkpoint stores about the run besides the training loop's state."""
    return {"root_key": np.asarray(jax.random.key_data(root)).tolist()}


def optimizer_signature(optimizer: Any, nets: Any) -> Any:
    """What a checkpoint records of the optimizer: the default optimizer's parameter
    average decay (``optimizer=None``; another decay would continue another run), or the
    names of a user's optimizer's state parts (its chain; their values are not
    comparable), so that resuming with another optimizer is refused by name rather than
    failing on the state's structure."""
    import equinox as eqx

    from .optimizer import AVERAGE_DECAY

    if optimizer is None:
        return {"default": True, "average_decay": float(AVERAGE_DECAY)}
    shapes = jax.eval_shape(optimizer.init, eqx.filter(nets, eqx.is_inexact_array))
    is_part = lambda n: isinstance(n, tuple) and hasattr(n, "_fields")  # noqa: E731
    parts = [type(n).__name__ for n in jax.tree.leaves(shapes, is_leaf=is_part) if is_part(n)]
    return {"default": False, "state": parts}


def fingerprint(approximator: Any, shapes: dict, settings: dict[str, Any]) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: the networks (class and options),
    the shapes of their inputs, the standardized keys and the training settings."""
    nets = {
        "inference_network": approximator.inference_network,
        "summary_network": approximator.summary_network,
    }
    return {
        **{
            k: None if n is None else [type(n).__name__, getattr(n, "config", None)]
            for k, n in nets.items()
        },
        "shapes": shapes,
        "standardize": approximator.standardize_keys,
        **settings,
    }
