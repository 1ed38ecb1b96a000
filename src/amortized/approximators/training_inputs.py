"""What one call of an approximator's ``fit`` trains on: the options checked, and the
training data as network arrays (offline: one dataset, with a held-out part for early
stopping; online: a fresh simulated epoch each time), as pure functions of the inputs and
a PRNG key. The compiled loop itself is :func:`amortized.training.fit`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from .._validation import check_positive_int
from ..training.holdout import holdout_size, split_rows
from .inputs import rows

ToArrays = Callable[[Mapping[str, Any], str], dict]


@dataclass(frozen=True)
class TrainingInputs:
    """``first``: the first epoch's arrays (they build the networks); ``epoch_data(e)``:
    epoch ``e``'s; ``validation``: held-out arrays or None; ``held_out``: rows held out of
    the training data for validation (0 when the user gave validation data);
    ``condition_keys``: the input keys that reach the network's conditions."""

    first: dict
    epoch_data: Callable[[int], dict]
    steps_per_epoch: int
    validation: dict | None
    held_out: int
    condition_keys: list[str]


def check_fit_options(
    network,
    *,
    has_summary: bool,
    epochs: int,
    batch_size: int,
    patience: int | None,
    restore_best: bool,
    mask_rate: float,
    offline: bool,
    online: bool,
    has_validation: bool,
) -> tuple[int, int, int | None]:
    """Raise for options that cannot work together; returns ``(epochs, batch_size,
    patience)`` checked."""
    if not 0.0 <= mask_rate < 1.0:
        raise ValueError(f"fit: mask_rate must lie in [0, 1), got {mask_rate}")
    if mask_rate > 0 and not has_summary:
        raise ValueError(
            "fit: mask_rate hides rows of summary_variables; there is no summary_network"
        )
    epochs = check_positive_int("fit", "epochs", epochs)
    batch_size = check_positive_int("fit", "batch_size", batch_size)
    if patience is not None:
        patience = check_positive_int("fit", "patience", patience)
    if not network.validation_loss_ranks_epochs and (patience is not None or restore_best):
        what = "early stopping (patience)" if patience is not None else "restore_best"
        raise ValueError(
            f"fit: {what} ranks epochs by the validation loss, and the validation loss "
            f"of {type(network).__name__} does not rank posteriors (it "
            f"measures the consistency of the map, which rises while the map learns); "
            f"train for a fixed number of epochs (BasicWorkflow.fit_offline("
            f"early_stopping=False))"
        )
    if offline == online:
        raise ValueError(
            "fit: give exactly one of dataset (offline), disk (a bank on disk) or simulate (online)"
        )
    if patience is not None and not has_validation and online:
        raise ValueError(
            "fit: early stopping (patience) of online training needs validation_data "
            "(a dict of simulations, or a number of them for BasicWorkflow.fit_online)"
        )
    return epochs, batch_size, patience


def offline_inputs(
    dataset: Mapping[str, Any],
    to_arrays: ToArrays,
    check_keys: Callable[[Mapping[str, Any]], list[str]],
    batch_size: int,
    hold_out: bool,
    key: jax.Array,
) -> TrainingInputs:
    """One dataset of simulations for every epoch, its keys checked by ``check_keys``
    (unused data warns; returns the condition keys); with ``hold_out``, a random
    :func:`~amortized.training.holdout.holdout_size` of its rows becomes the validation
    set."""
    keys = check_keys(dataset)
    train = to_arrays(dataset, "training data")
    val, held = None, 0
    if hold_out:
        held = holdout_size(rows(train))
        train, val = split_rows(train, held, key)
    steps = max(1, rows(train) // min(batch_size, rows(train)))
    return TrainingInputs(train, lambda _: train, steps, val, held, keys)


def online_inputs(
    simulate: Callable[[int, int], Mapping[str, Any]],
    to_arrays: ToArrays,
    check_keys: Callable[[Mapping[str, Any]], list[str]],
    num_batches_per_epoch: int | None,
    batch_size: int,
    key: jax.Array,
) -> TrainingInputs:
    """A fresh ``num_batches_per_epoch * batch_size`` simulations per epoch from
    ``simulate(n, seed)``, epoch ``e``'s seed drawn from ``key`` folded with ``e``; the
    first epoch's raw simulations go through ``check_keys`` (unused data warns; returns the
    condition keys)."""
    num_batches_per_epoch = check_positive_int(
        "fit_online", "num_batches_per_epoch", num_batches_per_epoch
    )
    n = num_batches_per_epoch * batch_size

    def seed(epoch: int) -> int:
        # a function of the epoch, not a running generator: a resumed run simulates what
        # the interrupted one would have
        return int(jax.random.randint(jax.random.fold_in(key, epoch), (), 0, 2**31 - 1))

    raw = simulate(n, seed(0))
    keys = check_keys(raw)
    first = [to_arrays(raw, "simulated data")]

    def epoch_data(epoch: int) -> dict:
        if epoch == 0 and first:
            return first.pop()
        return to_arrays(simulate(n, seed(epoch)), "simulated data")

    return TrainingInputs(first[0], epoch_data, num_batches_per_epoch, None, 0, keys)


def disk_inputs(
    bank,
    to_arrays: ToArrays,
    check_keys: Callable[[Mapping[str, Any]], list[str]],
    batch_size: int,
    hold_out: bool,
    key: jax.Array,
) -> TrainingInputs:
    """A :class:`~amortized.training.disk.DiskBank` (or a zarr
    :class:`~amortized.training.zarr_bank.ZarrBank`) read in chunks of ``bank.chunk_rows``
    (a multiple of ``batch_size``) in a new random order each epoch (a function of the
    epoch, so a resumed run reads what the interrupted one would have); with ``hold_out``,
    a random :func:`~amortized.training.holdout.holdout_size` of the files is held out and
    loaded as the validation set. The rows that do not fill a last batch are left out of
    that epoch (other ones each epoch); the epoch is split into equal chunks, the last
    filled with rows from the start of the epoch's order (fewer batches than chunks), so
    that every chunk trains through one compiled program."""
    k_split, k_order = jax.random.split(key)
    # the bank's own random order (a zarr store: whole stored chunks), so that the held-out
    # set and the first chunk are read from few stored chunks
    order = bank.epoch_order(np.arange(len(bank)), k_split)
    held = holdout_size(len(bank)) if hold_out else 0
    val_idx, train_idx = order[:held], order[held:]
    if len(train_idx) < batch_size:
        raise ValueError(
            f"fit_disk: {len(train_idx)} simulations to train on in {str(bank.root)!r}, fewer "
            f"than one batch of {batch_size}"
        )
    chunk = max(batch_size, bank.chunk_rows // batch_size * batch_size)
    raw = bank.load(train_idx[: min(chunk, len(train_idx))])
    keys = check_keys(raw)
    first = to_arrays(raw, "training data")
    val = to_arrays(bank.load(val_idx), "validation data") if held else None
    usable = len(train_idx) // batch_size * batch_size
    # every chunk the same length, so that one compiled program trains them all: a shorter
    # last chunk compiled a second program of the whole training step (seconds, and its
    # memory). The epoch's batches are split into as few equal chunks of at most `chunk`
    # rows as cover them, and the last is filled with rows from the start of the epoch's
    # order: fewer batches than there are chunks (other rows each epoch) are seen twice
    batches = usable // batch_size
    num_chunks = -(-batches // (chunk // batch_size))
    chunk = -(-batches // num_chunks) * batch_size
    per_epoch = num_chunks * chunk

    def epoch_data(epoch: int):
        order = bank.epoch_order(train_idx, jax.random.fold_in(k_order, epoch))[:usable]
        order = np.concatenate([order, order[: per_epoch - usable]])
        return bank.chunks(order, chunk, lambda d: to_arrays(d, "training data"))

    return TrainingInputs(first, epoch_data, per_epoch // batch_size, val, held, keys)
