"""One training run of an approximator: what :meth:`Approximator.fit
<amortized.approximators.base.Approximator.fit>` does, as a function of the approximator
and the options (checked here), returning the new trained state and history rather than
setting them, so that a fit that fails on the way leaves the approximator as it was.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax

from .._validation import as_key
from ..training import checkpoint, default_optimizer, fit
from ..training.fit import steps_done
from ..training.stopping import PlateauRule
from . import condition_checks, core, inputs
from .self_consistency import check_network, with_self_consistency
from .trained import Trained
from .training_inputs import check_fit_options, disk_inputs, offline_inputs, online_inputs

RANGE_ROWS = 4096  # training datasets whose conditions set the saved ranges


def run_fit(
    approx: Any,
    *,
    epochs: int,
    batch_size: int,
    seed: int | None,
    data_seed: int | None,
    dataset: Mapping[str, Any] | None,
    simulate: Callable[[int, int], Mapping[str, Any]] | None,
    disk: Any,
    num_batches_per_epoch: int | None,
    validation_data: Mapping[str, Any] | None,
    learning_rate: float,
    optimizer: Any,
    restore_best: bool,
    progress: bool,
    mask_rate: float,
    patience: int | None,
    checkpoint_dir: Any,
    checkpoint_every: int,
    resume: bool,
    self_consistency: Any,
) -> tuple[Trained, dict[str, list]]:
    """Train ``approx`` (an :class:`~amortized.approximators.base.Approximator`) as its
    ``fit`` documents; the trained state and the history, ``approx`` unchanged."""
    epochs, batch_size, patience = check_fit_options(
        approx.inference_network,
        has_summary=approx.summary_network is not None,
        epochs=epochs,
        batch_size=batch_size,
        patience=patience,
        restore_best=restore_best,
        mask_rate=mask_rate,
        offline=(dataset is not None) + (disk is not None) == 1,
        online=simulate is not None,
        has_validation=validation_data is not None,
    )
    ckpt, saved, root = checkpoint.start(checkpoint_dir, checkpoint_every, resume, seed)
    k_hold, k_build, k_fit = jax.random.split(root, 3)
    k_sim = jax.random.fold_in(k_build, 1)  # apart from the build key
    if data_seed is not None:
        k_hold, k_sim = jax.random.split(as_key(data_seed))

    def to_arrays(raw: Mapping[str, Any], where: str) -> dict:
        return approx.to_network_arrays(raw, where=where)

    hold_out = patience is not None and validation_data is None
    if dataset is not None or disk is not None:
        inputs_of, source = (offline_inputs, dataset) if disk is None else (disk_inputs, disk)
        data = inputs_of(
            source, to_arrays, approx._check_training_keys, batch_size, hold_out, k_hold
        )
    else:
        data = online_inputs(
            simulate,
            to_arrays,
            approx._check_training_keys,
            num_batches_per_epoch,
            batch_size,
            key=k_sim,
        )
    val = data.validation
    if validation_data is not None:
        val = approx.to_network_arrays(validation_data, where="validation data")
    approx.inference_network.check_training_steps(
        steps_done(approx.history) + epochs * data.steps_per_epoch
    )
    state = approx.state if approx.is_trained else approx._untrained(data.first, k_build)
    if self_consistency is not None:
        check_network(state.nets.inference)
    if ckpt is not None:
        settings = dict(epochs=epochs, batch_size=batch_size, patience=patience,
                        learning_rate=learning_rate, mask_rate=mask_rate,
                        online=simulate is not None, steps=data.steps_per_epoch)  # fmt: skip
        if data_seed is not None:
            settings["data_seed"] = data_seed
        if self_consistency is not None:
            settings["self_consistency"] = self_consistency.config.settings()
        settings["optimizer"] = checkpoint.optimizer_signature(optimizer, state.nets)
        fp = checkpoint.fingerprint(approx, inputs.row_shapes(data.first), settings)
        ckpt = dataclasses.replace(ckpt, fingerprint=fp)
        if saved is not None:
            ckpt.check(saved)
    flat = optimizer is None  # a user's optimizer may depend on the parameter tree
    if flat:
        optimizer = default_optimizer(learning_rate, epochs * data.steps_per_epoch)
    loss_fn = core.loss if mask_rate == 0 else functools.partial(core.loss, mask_rate=mask_rate)
    if self_consistency is not None:
        loss_fn = with_self_consistency(loss_fn, self_consistency, data.steps_per_epoch)
    nets, history = fit(
        state.nets,
        state.stats,
        loss_fn,
        optimizer,
        epochs,
        batch_size,
        k_fit,
        data.epoch_data,
        val,
        learning_rate=learning_rate,
        restore_best=restore_best,
        progress=progress,
        history=copy.deepcopy(approx.history),  # kept only when the fit completes
        flat_params=flat,
        early_stopping=None
        if patience is None
        else PlateauRule(patience=patience, min_gain=approx.inference_network.stopping_min_gain),
        warn_overfitting=approx.inference_network.validation_loss_ranks_epochs,
        checkpoints=ckpt,
        resume=saved,
        run_meta=checkpoint.run_meta(root),
    )
    if data.held_out:
        history["held_out"] = data.held_out
    ranges = condition_checks.widen_ranges(state.condition_ranges, data.first, RANGE_ROWS)
    return Trained(nets, state.stats, state.shapes, ranges, data.condition_keys), history
