"""The training loop: one compiled call per epoch (a ``lax.scan`` over its batches).

Data for an epoch lives on the device; each epoch draws a fresh permutation and the last
incomplete batch of that permutation is left for later epochs (every example is seen, in
expectation equally often). A whole epoch compiled as one call is what makes training fast on
a CPU: a per-step Python loop costs about twice as much here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

LossFn = Callable[[Any, Any, Mapping[str, jax.Array], jax.Array, bool], jax.Array]


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


def _num_rows(data: Mapping[str, jax.Array]) -> int:
    return int(jax.tree.leaves(data)[0].shape[0])


def _flat(params, flat: bool):
    """The parameters as one vector (and the map back) when ``flat``; else unchanged."""
    if flat:
        return ravel_pytree(params)
    return params, lambda p: p


@eqx.filter_jit
def _train_epoch(
    nets, opt_state, stats, data, key, loss_fn, optimizer, num_batches, batch_size, flat
):
    params, static = eqx.partition(nets, eqx.is_inexact_array)
    # The default optimizer updates one flat vector: its elementwise updates then run as a
    # few large fused operations instead of a few per parameter array (2.4 ms of an 8 ms
    # coupling-flow step on CPU went to per-array optimizer work).
    params, unravel = _flat(params, flat)
    n = _num_rows(data)
    k_perm, k_steps = jax.random.split(key)
    idx = jax.random.permutation(k_perm, n)[: num_batches * batch_size]
    idx = idx.reshape(num_batches, batch_size)

    def step(carry, inputs):
        params, opt_state = carry
        ib, k = inputs
        batch = jax.tree.map(lambda a: a[ib], data)

        def objective(p):
            return loss_fn(eqx.combine(unravel(p), static), stats, batch, k, True)

        value, grads = jax.value_and_grad(objective)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    (params, opt_state), losses = jax.lax.scan(
        step, (params, opt_state), (idx, jax.random.split(k_steps, num_batches))
    )
    return eqx.combine(unravel(params), static), opt_state, losses


@eqx.filter_jit
def _eval_loss(nets, stats, data, key, loss_fn, chunk):
    """Mean loss (dropout off) over ``data`` in chunks of ``chunk`` rows; a remainder is
    evaluated as one extra chunk so no validation example is left out."""
    n = _num_rows(data)
    full = n // chunk
    total = jnp.zeros(())
    if full:
        body = jax.tree.map(lambda v: v[: full * chunk].reshape((full, chunk) + v.shape[1:]), data)

        def one(carry, inputs):
            batch, k = inputs
            return carry + loss_fn(nets, stats, batch, k, False) * chunk, None

        total, _ = jax.lax.scan(one, total, (body, jax.random.split(key, full)))
    if n - full * chunk:
        rest = jax.tree.map(lambda v: v[full * chunk :], data)
        total = total + loss_fn(nets, stats, rest, key, False) * (n - full * chunk)
    return total / n


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
) -> tuple[Any, dict[str, list]]:
    """Train ``nets`` for ``epochs``; ``epoch_data(epoch)`` returns that epoch's data
    (the same arrays for offline training, fresh simulations for online training).

    Returns the trained networks (the best by validation loss with ``restore_best``) and the
    history ``{"loss": [...], "val_loss": [...], "epoch_seconds": [...]}`` (per-epoch means
    and the wall time of each epoch's training steps, the first including compilation;
    JSON-serializable). ``flat_params``: the optimizer sees all parameters as one vector
    (faster; only for optimizers that do not depend on the parameter tree's structure).
    """
    history = history if history is not None else {"loss": [], "val_loss": []}
    history.setdefault("epoch_seconds", [])
    opt_state = optimizer.init(_flat(eqx.filter(nets, eqx.is_inexact_array), flat_params)[0])
    best, best_val = nets, np.inf
    # one validation key for all epochs, so that stochastic losses are comparable
    key, k_val = jax.random.split(key)
    show = progress and sys.stderr.isatty()
    bar = tqdm(range(epochs), desc="training", unit="epoch", disable=not show, leave=True)
    for epoch in bar:
        started = time.perf_counter()
        data = epoch_data(epoch)
        n = _num_rows(data)
        bs = min(batch_size, n)
        key, k_epoch = jax.random.split(key)
        nets, opt_state, losses = _train_epoch(
            nets, opt_state, stats, data, k_epoch, loss_fn, optimizer, n // bs, bs, flat_params
        )
        losses = np.asarray(losses)  # waits for the epoch to finish
        history["epoch_seconds"].append(time.perf_counter() - started)
        _check_finite(losses, epoch, learning_rate)
        history["loss"].append(float(losses.mean()))
        post = {"loss": f"{history['loss'][-1]:.4f}"}
        if validation_data is not None:
            val = float(
                _eval_loss(
                    nets,
                    stats,
                    validation_data,
                    k_val,
                    loss_fn,
                    min(_num_rows(validation_data), 1024),
                )
            )
            history["val_loss"].append(val)
            post["val_loss"] = f"{val:.4f}"
            if restore_best and val < best_val:
                best, best_val = nets, val
        bar.set_postfix(post)
    if restore_best and validation_data is not None:
        nets = best
    return nets, history
