"""The training loop: one compiled call per epoch (a ``lax.scan`` over its batches).

Data for an epoch lives on the device; each epoch draws a fresh permutation and the last
incomplete batch of that permutation is left for later epochs (every example is seen, in
expectation equally often). A whole epoch compiled as one call is what makes training fast on
a CPU: a per-step Python loop pays a dispatch per step. The exception is a loss that itself
contains a loop (a recurrent summary network's ``lax.scan`` over time steps): XLA on CPU ran
such a scan nested in the epoch's scan several times slower than the same step compiled
alone (BENCHMARKS.md's log), so such losses are trained with one compiled call per step;
both paths compute the same updates.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

from .. import _random
from .._mappings import relieve_mappings
from . import parallel
from .checkpoint import Checkpoints, Saved
from .optimizer import averaged_params, has_learning_rate_scale, set_learning_rate_scale
from .stopping import PlateauRule, selection_z, significantly_better

#: ``loss_fn(nets, stats, batch, key, train, step)``: ``step`` is the number of optimizer
#: steps taken before this one (across earlier fits of the same networks), an int32 scalar
#: that networks with a training schedule read (a consistency model's discretization).
LossFn = Callable[[Any, Any, Mapping[str, jax.Array], jax.Array, bool, jax.Array], jax.Array]


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


class OverfittingWarning(UserWarning):
    """The validation loss rose well above its minimum (see :func:`overfitting_message`)."""


def _num_rows(data: Mapping[str, jax.Array]) -> int:
    return int(jax.tree.leaves(data)[0].shape[0])


def _flat(params, flat: bool):
    """The parameters as one vector (and the map back) when ``flat``; else unchanged."""
    if flat:
        return ravel_pytree(params)
    return params, lambda p: p


def _averaged(nets, opt_state, unravel):
    """``nets`` with the parameter average the optimizer keeps
    (:func:`~amortized.training.optimizer.track_average`; ``unravel`` turns the
    optimizer's view of the parameters back into their tree), or ``nets`` when it keeps
    none."""
    average = averaged_params(opt_state)
    if average is None:
        return nets
    return eqx.combine(unravel(average), eqx.filter(nets, eqx.is_inexact_array, inverse=True))


def steps_done(history: Mapping[str, Any] | None) -> int:
    """Optimizer steps already taken by the networks whose training ``history`` this is."""
    steps = (history or {}).get("steps") or [0]
    return int(steps[-1])


def _update(
    params, opt_state, unravel, static, stats, batch, key, step, loss_fn, optimizer, devices
):
    """One optimizer step on ``batch`` (split over ``devices`` when given): the new (flat or
    tree) parameters, state and loss."""

    def objective(p, b, k, s):
        return loss_fn(eqx.combine(unravel(p), static), stats, b, k, True, s)

    value, grads = parallel.value_and_grad(objective, params, batch, key, devices, step)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value


def _batch_plan(key, n: int, num_batches: int, batch_size: int):
    """Row indices ``(num_batches, batch_size)`` of a fresh permutation and one key per step
    (hash-derived, :mod:`amortized._random`: threefry's permutation and split loops took
    2-3% of a coupling-flow epoch on CPU)."""
    k_perm, k_steps = _random.split(key, 2)
    idx = _random.permutation(k_perm, n)[: num_batches * batch_size]
    return idx.reshape(num_batches, batch_size), _random.split(k_steps, num_batches)


@eqx.filter_jit
def _train_epoch(
    nets,
    opt_state,
    stats,
    data,
    key,
    first_step,
    loss_fn,
    optimizer,
    num_batches,
    batch_size,
    flat,
    devices,
):
    params, static = eqx.partition(nets, eqx.is_inexact_array)
    # The default optimizer updates one flat vector: its elementwise updates then run as a
    # few large fused operations instead of a few per parameter array (per-array optimizer
    # work had been a large share of a coupling-flow step on CPU).
    params, unravel = _flat(params, flat)
    idx, keys = _batch_plan(key, _num_rows(data), num_batches, batch_size)

    def step(carry, inputs):
        ib, k, s = inputs
        batch = jax.tree.map(lambda a: a[ib], data)
        params, opt_state, value = _update(
            *carry, unravel, static, stats, batch, k, s, loss_fn, optimizer, devices
        )
        return (params, opt_state), value

    steps = first_step + jnp.arange(num_batches, dtype=jnp.int32)
    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (idx, keys, steps))
    return eqx.combine(unravel(params), static), opt_state, losses


def _train_step_impl(
    nets, opt_state, stats, data, ib, key, step, loss_fn, optimizer, flat, devices
):
    params, static = eqx.partition(nets, eqx.is_inexact_array)
    params, unravel = _flat(params, flat)
    batch = jax.tree.map(lambda a: a[ib], data)
    params, opt_state, value = _update(
        params, opt_state, unravel, static, stats, batch, key, step, loss_fn, optimizer, devices
    )
    return eqx.combine(unravel(params), static), opt_state, value


_train_step = eqx.filter_jit(_train_step_impl)
_plan = jax.jit(_batch_plan, static_argnums=(1, 2, 3))


def _train_epoch_by_step(
    nets,
    opt_state,
    stats,
    data,
    key,
    first_step,
    loss_fn,
    optimizer,
    num_batches,
    batch_size,
    flat,
    devices,
):
    """:func:`_train_epoch` as one compiled call per step (same batches, keys and updates)."""
    idx, keys = _plan(key, _num_rows(data), num_batches, batch_size)
    losses = []
    for b in range(num_batches):
        step = first_step + jnp.int32(b)
        nets, opt_state, value = _train_step(
            nets, opt_state, stats, data, idx[b], keys[b], step, loss_fn, optimizer, flat, devices
        )
        losses.append(value)
    return nets, opt_state, jnp.stack(losses)


def _sub_jaxprs(value):
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        yield value.jaxpr
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _sub_jaxprs(v)


def _has_loop(jaxpr) -> bool:
    """Whether a jaxpr (or any jaxpr nested in it) runs a ``scan`` or ``while`` loop."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("scan", "while"):
            return True
        for value in eqn.params.values():
            if any(_has_loop(sub) for sub in _sub_jaxprs(value)):
                return True
    return False


def step_has_loop(nets, opt_state, stats, data, loss_fn, optimizer, batch_size, flat) -> bool:
    """Whether one training step of ``loss_fn`` contains a loop (traced, not compiled)."""
    ib = jnp.zeros((batch_size,), jnp.int32)
    closed = eqx.filter_make_jaxpr(_train_step_impl)(
        nets,
        opt_state,
        stats,
        data,
        ib,
        jax.random.key(0),
        jnp.int32(0),
        loss_fn,
        optimizer,
        flat,
        None,
    )[0]
    return _has_loop(closed.jaxpr)


def _eval_group_losses(nets, stats, data, key, loss_fn, group: int, step):
    """Validation losses of a network whose loss needs other rows of its batch
    (contrastive ratio estimation: ``validation_group`` rows): one loss per group of
    ``group`` consecutive examples, the last group taking the remainder, so no example is
    left out. The groups play the part of the examples in the paired comparison of epochs."""
    n = _num_rows(data)
    num = max(n // group, 1)
    head = (num - 1) * group
    t = jnp.asarray(step, jnp.int32)
    keys = jax.random.split(key, num)
    parts = []
    if head:
        body = jax.tree.map(lambda v: v[:head].reshape((num - 1, group) + v.shape[1:]), data)
        parts.append(jax.vmap(lambda b, k: loss_fn(nets, stats, b, k, False, t))(body, keys[1:]))
    last = jax.tree.map(lambda v: v[head:], data)
    parts.append(loss_fn(nets, stats, last, keys[0], False, t)[None])
    return jnp.concatenate(parts)


@eqx.filter_jit
def _eval_losses(nets, stats, data, key, loss_fn, chunk, step=0):
    """Each validation example's loss ``(n,)`` (dropout off), in chunks of ``chunk`` rows
    (each row a batch of one, with its own key; of ``validation_draws`` copies of the
    example for a network whose loss draws noise, so that its loss is their mean); a
    remainder is evaluated as one extra chunk so no validation example is left out. The
    mean is the validation loss; the per-example values let the early-stopping rule
    compare two epochs on the same examples
    (:func:`~amortized.training.stopping.significantly_better`). ``step``: the optimizer steps
    taken so far, at which a scheduled loss is evaluated."""
    n = _num_rows(data)
    group = int(getattr(getattr(nets, "inference", None), "validation_group", 1))
    if group > 1:
        return _eval_group_losses(nets, stats, data, key, loss_fn, group, step)
    full = n // chunk
    # a batch of the example repeated: the loss's mean over that many of its random draws
    draws = int(getattr(getattr(nets, "inference", None), "validation_draws", 1))

    def rows(batch, k):
        def one(row, kr):
            row = jax.tree.map(lambda a: jnp.repeat(a[None], draws, axis=0), row)
            return loss_fn(nets, stats, row, kr, False, jnp.asarray(step, jnp.int32))

        return jax.vmap(one)(batch, jax.random.split(k, _num_rows(batch)))

    parts = []
    if full:
        body = jax.tree.map(lambda v: v[: full * chunk].reshape((full, chunk) + v.shape[1:]), data)
        _, out = jax.lax.scan(
            lambda c, inputs: (c, rows(*inputs)), None, (body, jax.random.split(key, full))
        )
        parts.append(out.reshape(-1))
    if n - full * chunk:
        rest = jax.tree.map(lambda v: v[full * chunk :], data)
        parts.append(rows(rest, jax.random.fold_in(key, full)))
    return jnp.concatenate(parts)


def _check_finite(losses: np.ndarray, epoch: int, learning_rate: float) -> None:
    bad = ~np.isfinite(losses)
    if bad.any():
        b = int(np.argmax(bad))
        raise TrainingDiverged(
            f"training stopped: the loss became {losses[b]} at epoch {epoch + 1}, batch {b + 1}. "
            f"Likely causes: a learning rate too high (initial_learning_rate={learning_rate}; "
            f"try a tenth), extreme or unscaled values in the data (check the simulator "
            f"outputs, add Adapter transforms such as log or constrain), or parameters with "
            f"very different scales that the adapter should transform."
        )


def overfitting_message(val_losses: list[float], restored: bool) -> str | None:
    """A warning when the validation loss rose well above its minimum after the first half
    of training, else ``None``.

    Criterion: the best epoch lies in the first half and the last epoch's loss exceeds the
    best by more than ``0.05 * max(1, |best|)``. The usual cause is a network that memorizes
    a fixed set of simulations (offline training): for a coupling flow on 10^4 simulations
    of a 10-parameter model the validation loss was lowest at epoch 5-13 of 100-400 and rose
    by up to 6 nats after, and smaller subnets with a lower learning rate gave posteriors
    with 40% less KL divergence (BENCHMARKS.md). Needs at least 10 epochs.

    >>> overfitting_message([9.0, 7.5, 7.6, 7.9, 8.2, 8.4, 8.6, 8.7, 8.8, 8.8], True) is None
    False
    """
    v = np.asarray(val_losses, dtype=float)
    if v.size < 10 or not np.isfinite(v).all():
        return None
    best = int(np.argmin(v))
    rise = float(v[-1] - v[best])
    if best + 1 > v.size // 2 or rise <= 0.05 * max(1.0, abs(float(v[best]))):
        return None
    kept = (
        f"restore_best kept epoch {best + 1}'s networks"
        if restored
        else "the networks of the last epoch are kept (restore_best=True keeps the best)"
    )
    return (
        f"the validation loss was lowest at epoch {best + 1} of {v.size} ({v[best]:.4f}) and "
        f"rose to {v[-1]:.4f} by the end: the network overfits its training data; {kept}. "
        f"More simulations (or online training), smaller subnets (subnet_kwargs widths), "
        f"a lower learning rate or fewer epochs usually give a better posterior."
    )


def fit(
    nets,
    stats,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    epochs: int,
    batch_size: int,
    key: jax.Array,
    epoch_data: Callable[[int], Mapping[str, jax.Array]],
    validation_data: Mapping[str, jax.Array] | None = None,
    learning_rate: float = float("nan"),
    restore_best: bool = False,
    progress: bool = True,
    history: dict[str, list] | None = None,
    flat_params: bool = False,
    early_stopping: PlateauRule | None = None,
    warn_overfitting: bool = True,
    checkpoints: Checkpoints | None = None,
    resume: Saved | None = None,
    run_meta: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, list]]:
    """Train ``nets`` for ``epochs``; ``epoch_data(epoch)`` returns that epoch's data
    (the same arrays for offline training, fresh simulations for online training), or an
    iterator of chunks of it trained one after another (a simulation bank on disk).

    Returns the trained networks (the best by validation loss with ``restore_best``) and the
    history ``{"loss": [...], "val_loss": [...], "epoch_seconds": [...], "devices": [...]}``
    (per-epoch means, the wall time of each epoch's training steps, the first including
    compilation, and the number of devices each batch was split over; JSON-serializable),
    and ``"steps"``, the optimizer steps taken by the end of each epoch, counted on from
    earlier fits recorded in ``history`` (the ``step`` that ``loss_fn`` receives).
    When the optimizer keeps a moving average of the parameters
    (:func:`~amortized.training.optimizer.track_average`; the default optimizer does with
    ``average_decay`` above 0), the average is what each epoch
    validates and what is returned; training continues from the unaveraged parameters.
    ``flat_params``: the optimizer sees all parameters as one vector (faster; only for
    optimizers that do not depend on the parameter tree's structure).
    ``early_stopping``: a :class:`~amortized.training.stopping.PlateauRule`: after each
    epoch it lowers the learning rate (through the optimizer's plateau scale, when it has
    one) or ends training; the stop counts epochs since the last improvement beyond chance
    (the epoch's per-example held-out losses beat those of the previous such epoch by more
    than two standard errors of the paired mean difference, so that a plateau's wandering
    does not reset the count), and the best epoch's networks are restored when they beat the
    last epoch's by more than :func:`~amortized.training.stopping.selection_z` standard
    errors (corrected for having picked the lowest of the epochs); the history records
    ``"best_epoch"`` (lowest held-out loss), ``"last_improvement"``, ``"stopped_epoch"``
    (1-based; ``None`` when training ran all ``epochs``), ``"restored_epoch"`` (the epoch
    whose networks are returned, ``None``: the last), ``"lr_scale"`` (the plateau scale in
    each epoch) and ``"lr_reductions"`` (the epochs after which it was lowered). Needs
    ``validation_data``.
    ``warn_overfitting``: warn (:class:`OverfittingWarning`) when the validation loss rose
    well above its minimum; off for losses that do not rank posteriors.
    With several local devices (GPUs, or a CPU split by
    :func:`~amortized.training.parallel.set_cpu_devices`), each batch is split over them
    (see :mod:`amortized.training.parallel`).
    ``checkpoints``: write a checkpoint every ``checkpoints.every`` epochs
    (:mod:`amortized.training.checkpoint`; ``run_meta`` is stored with it); ``resume``: a
    checkpoint of this same run to continue from (the networks, optimizer state, keys,
    history and stopping state it holds replace the starting ones).
    """
    if early_stopping is not None and validation_data is None:
        raise ValueError("fit: early stopping needs validation_data")
    # a fit compiles a few programs; a process that has compiled thousands before
    # (a long session) makes room first rather than crash in the compiler
    relieve_mappings("fit")
    restore_best = restore_best or early_stopping is not None
    history = history if history is not None else {"loss": [], "val_loss": []}
    step = steps_done(history)
    history.setdefault("steps", [])
    history.setdefault("epoch_seconds", [])
    history.setdefault("devices", [])
    opt_params, unravel = _flat(eqx.filter(nets, eqx.is_inexact_array), flat_params)
    opt_state = optimizer.init(opt_params)
    del opt_params
    best, best_val, best_epoch, stopped = nets, np.inf, None, None
    best_losses = last_losses = None
    # the held-out losses of the last epoch that improved beyond chance, and its index
    # among this fit's validation losses (what the stopping rule counts from)
    ref_losses, improved_at = None, None
    scale, last_reduction = 1.0, None
    can_scale = early_stopping is not None and has_learning_rate_scale(opt_state)
    # what counts as an improvement for `last_improvement`: the stop's own rule, or any
    # gain beyond chance when nothing stops early
    counts = early_stopping or PlateauRule(min_gain=0.0)
    if early_stopping is not None:
        history.setdefault("lr_scale", [])
        history.setdefault("lr_reductions", [])
    # earlier fits' epochs are in the history too (an earlier fit without validation data
    # left fewer validation losses than epochs)
    first_epoch, first_val = len(history["loss"]), len(history["val_loss"])
    # one validation key for all epochs, so that stochastic losses are comparable
    key, k_val = jax.random.split(key)
    start = 0
    if resume is not None:
        tree = resume.restore(_loop_tree(nets, opt_state, best, key, k_val))
        nets, opt_state, best = tree["nets"], tree["opt_state"], tree["best"]
        key, k_val = (jax.random.wrap_key_data(tree[k]) for k in ("key", "k_val"))
        loop = resume.meta["loop"]
        history, step, start = resume.meta["history"], loop["step"], loop["epoch"]
        first_epoch, first_val = loop["first_epoch"], loop["first_val"]
        best_val, best_epoch = loop["best_val"], loop["best_epoch"]
        improved_at, scale, last_reduction = (
            loop["improved_at"],
            loop["scale"],
            loop["last_reduction"],
        )
        best_losses, last_losses, ref_losses = (
            None if loop[k] is None else np.asarray(loop[k], np.float32)
            for k in ("best_losses", "last_losses", "ref_losses")
        )
    show = progress and sys.stderr.isatty()
    bar = tqdm(
        range(start, epochs), desc="training", unit="epoch", disable=not show, leave=True,
        initial=start, total=epochs,
    )  # fmt: skip
    run_epoch = None  # chosen on the first epoch's data (see the module docstring)
    devices = None
    for epoch in bar:
        started = time.perf_counter()
        epoch_in = epoch_data(epoch)
        # an epoch's data in memory, or chunks read one after another (a bank on disk)
        parts = []
        for data in [epoch_in] if isinstance(epoch_in, Mapping) else epoch_in:
            n = _num_rows(data)
            bs = min(batch_size, n)
            key, k_epoch = jax.random.split(key)
            if run_epoch is None:
                nested = step_has_loop(
                    nets, opt_state, stats, data, loss_fn, optimizer, bs, flat_params
                )
                run_epoch = _train_epoch_by_step if nested else _train_epoch
                devices = parallel.training_devices(bs)
                nets, opt_state = parallel.replicate((nets, opt_state), devices)
            nets, opt_state, losses = run_epoch(
                nets,
                opt_state,
                stats,
                data,
                k_epoch,
                jnp.int32(step),
                loss_fn,
                optimizer,
                n // bs,
                bs,
                flat_params,
                devices,
            )
            parts.append(np.asarray(losses))  # waits for the chunk's steps to finish
            step += n // bs
        losses = np.concatenate(parts)
        history["steps"].append(step)
        history["epoch_seconds"].append(time.perf_counter() - started)
        history["devices"].append(len(devices) if devices else 1)
        _check_finite(losses, epoch, learning_rate)
        history["loss"].append(float(losses.mean()))
        post = {"loss": f"{history['loss'][-1]:.4f}"}
        if validation_data is not None:
            # what is validated, kept as the best and returned: the parameter average when
            # the optimizer keeps one (training goes on from the unaveraged parameters)
            evaluated = _averaged(nets, opt_state, unravel)
            last_losses = np.asarray(
                _eval_losses(
                    evaluated,
                    stats,
                    validation_data,
                    k_val,
                    loss_fn,
                    min(_num_rows(validation_data), 1024),
                    jnp.int32(step),
                )
            )
            val = float(last_losses.mean())
            history["val_loss"].append(val)
            post["val_loss"] = f"{val:.4f}"
            if val < best_val:
                best, best_val, best_epoch = evaluated, val, first_epoch + epoch + 1
                best_losses = last_losses
            at = len(history["val_loss"]) - 1 - first_val
            if np.isfinite(val) and (
                ref_losses is None or counts.improves(last_losses, ref_losses, at - improved_at)
            ):
                ref_losses, improved_at = last_losses, at
        bar.set_postfix(post)
        if not show and progress:
            # no terminal (a log file, a notebook's captured output): one line per epoch
            line = ", ".join(f"{k} {v}" for k, v in post.items())
            print(f"epoch {epoch + 1}/{epochs}: {line}", file=sys.stderr, flush=True)
        if early_stopping is not None:
            history["lr_scale"].append(scale)
            ours = history["val_loss"][first_val:]
            stale = len(ours) if improved_at is None else len(ours) - 1 - improved_at
            rising = best_losses is not None and significantly_better(best_losses, last_losses)[0]
            # an optimizer without the plateau scale cannot lower its rate: it is at its floor
            action, new_scale = early_stopping.next(
                ours,
                scale if can_scale else early_stopping.min_scale,
                last_reduction,
                stale=stale,
                rising=rising,
            )
            if action == "stop":
                stopped = first_epoch + epoch + 1
                bar.close()
                break
            if action == "reduce" and can_scale:
                scale, last_reduction = new_scale, len(ours) - 1
                opt_state = set_learning_rate_scale(opt_state, scale)
                history["lr_reductions"].append(first_epoch + epoch + 1)
        if checkpoints is not None and checkpoints.due(epoch + 1):
            loop = dict(
                epoch=epoch + 1, step=step, first_epoch=first_epoch, first_val=first_val,
                best_val=best_val, best_epoch=best_epoch, improved_at=improved_at,
                scale=scale, last_reduction=last_reduction, best_losses=best_losses,
                last_losses=last_losses, ref_losses=ref_losses,
            )  # fmt: skip
            checkpoints.write(
                epoch + 1,
                _loop_tree(nets, opt_state, best, key, k_val),
                {**(run_meta or {}), "history": history, "loop": loop},
            )
    nets, best = parallel.local((_averaged(nets, opt_state, unravel), best))
    restored = restore_best and validation_data is not None
    if restored and early_stopping is not None and best_epoch is not None:
        # the lowest of many noisy validation losses is partly luck: the best epoch is
        # kept only when it beats the last one on the same examples by more than chance
        compared = len(history["val_loss"]) - first_val
        better, diff, se = significantly_better(best_losses, last_losses, z=selection_z(compared))
        history["best_vs_last"] = {"loss_difference": diff, "standard_error": se}
        restored = better
    if restored:
        nets = best
    if validation_data is not None:
        history["best_epoch"] = best_epoch
        history["last_improvement"] = None if improved_at is None else first_epoch + improved_at + 1
        history["stopped_epoch"] = stopped
        history["restored_epoch"] = best_epoch if restored else None
        if early_stopping is not None and progress:
            print(
                f"early stopping: the validation loss was lowest at epoch {best_epoch} "
                + (
                    f"and had not improved beyond chance for {early_stopping.patience} "
                    f"epochs since epoch {history['last_improvement']}; stopped after "
                    f"epoch {stopped}"
                    if stopped
                    else f"of {first_epoch + epochs} (no stop)"
                )
                + (
                    f"; epoch {best_epoch}'s networks restored"
                    if restored
                    else "; the last epoch's networks kept (the best was not better beyond chance)"
                ),
                file=sys.stderr,
            )
        if early_stopping is None and warn_overfitting:
            message = overfitting_message(history["val_loss"][first_val:], restore_best)
            if message is not None:
                warnings.warn(message, OverfittingWarning, stacklevel=2)
    return nets, history


def _loop_tree(nets, opt_state, best, key, k_val) -> dict[str, Any]:
    """What a checkpoint stores as arrays (keys as their raw words)."""
    return {
        "nets": nets,
        "opt_state": opt_state,
        "best": best,
        "key": jax.random.key_data(key),
        "k_val": jax.random.key_data(k_val),
    }
