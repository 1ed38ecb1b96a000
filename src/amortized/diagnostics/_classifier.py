"""The C2ST classifier in JAX: scikit-learn's ``MLPClassifier`` training, compiled.

The algorithm is the one ``MLPClassifier(activation="relu", solver="adam")`` runs with its
defaults, so that a C2ST computed here estimates the same quantity as the sbibm protocol:

- layers ``d -> hidden... -> 1``, ReLU, a logistic output; weights and biases drawn
  U(-b, b) with b = sqrt(6 / (fan_in + fan_out)) (Glorot);
- per batch (200 samples, the last one smaller), loss = mean binary cross-entropy
  + alpha / 2 * sum(W**2) / batch_size with alpha = 1e-4 (biases not penalized);
- Adam with lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8 in scikit-learn's form
  (step = lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps));
- samples reshuffled every epoch; the epoch's loss is the sample-weighted mean of the
  batch losses; training stops when it has not fallen below the best epoch loss minus
  tol = 1e-4 for more than 10 consecutive epochs, or after ``max_epochs`` (10,000).

What differs: float32 instead of float64 and JAX's random streams instead of NumPy's,
so the accuracy differs from scikit-learn's by its seed-to-seed noise only (tested
against scikit-learn and against the Bayes accuracy of two Gaussians). Why: scikit-learn
runs each of its up to 10,000 epochs x 80 batches as Python calls; for two 10-D samples
that are hard to tell apart (the usual case for a good posterior) one fold took over
8 CPU-minutes here; the whole epoch loop compiled as one ``lax.while_loop`` does the same
work without the interpreter.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

BATCH_SIZE = 200
LEARNING_RATE = 1e-3
ALPHA = 1e-4
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
TOL = 1e-4
N_ITER_NO_CHANGE = 10


def _init(key: jax.Array, sizes: tuple[int, ...]) -> list[tuple[jax.Array, jax.Array]]:
    params = []
    for k, (fan_in, fan_out) in zip(
        jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:], strict=True), strict=True
    ):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        kw, kb = jax.random.split(k)
        params.append(
            (
                jax.random.uniform(kw, (fan_in, fan_out), minval=-bound, maxval=bound),
                jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound),
            )
        )
    return params


def _logits(params, x: jax.Array) -> jax.Array:
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b[None, :])
    w, b = params[-1]
    return (x @ w + b[None, :])[:, 0]


def _batch_loss(params, x, y, weight):
    """Mean cross-entropy over the batch's real samples (``weight`` 1) + the L2 term."""
    n = jnp.maximum(weight.sum(), 1.0)
    z = _logits(params, x)
    # -[y log s(z) + (1 - y) log(1 - s(z))], written stably in the logit
    ce = jnp.maximum(z, 0.0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))
    l2 = sum(jnp.sum(w**2) for w, _ in params)
    return jnp.sum(ce * weight) / n + 0.5 * ALPHA * l2 / n


class _State(NamedTuple):
    """The epoch loop's carry: parameters, Adam moments and step count, the shuffling key,
    epochs run, the best epoch loss and the epochs since it last improved by ``TOL``."""

    params: Any
    m: Any
    v: Any
    t: jax.Array
    key: jax.Array
    epochs: jax.Array
    best: jax.Array
    stale: jax.Array


@functools.partial(jax.jit, static_argnames=("hidden", "max_epochs"))
def _train(key, x, y, hidden: tuple[int, ...], max_epochs: int):
    """Train on ``x (n, d)``, ``y (n,)``; returns the parameters and the epochs run."""
    n, d = x.shape
    num_batches = -(-n // BATCH_SIZE)
    padded = num_batches * BATCH_SIZE
    k_init, k_shuffle = jax.random.split(key)
    params = _init(k_init, (d, *hidden, 1))
    zeros = jax.tree.map(jnp.zeros_like, params)
    grad_fn = jax.value_and_grad(_batch_loss)

    def batch_step(carry, idx):
        params, m, v, t = carry
        weight = (idx < n).astype(x.dtype)
        safe = jnp.minimum(idx, n - 1)
        loss, g = grad_fn(params, x[safe], y[safe], weight)
        t = t + 1
        m = jax.tree.map(lambda a, b: BETA1 * a + (1 - BETA1) * b, m, g)
        v = jax.tree.map(lambda a, b: BETA2 * a + (1 - BETA2) * b * b, v, g)
        lr = LEARNING_RATE * jnp.sqrt(1 - BETA2**t) / (1 - BETA1**t)
        params = jax.tree.map(lambda p, a, b: p - lr * a / (jnp.sqrt(b) + EPS), params, m, v)
        return (params, m, v, t), loss * weight.sum()

    def epoch(state: _State) -> _State:
        key, sub = jax.random.split(state.key)
        # the permuted sample indices, then indices >= n that mark the last batch's padding
        order = jnp.concatenate([jax.random.permutation(sub, n), jnp.arange(n, padded)])
        (params, m, v, t), losses = jax.lax.scan(
            batch_step,
            (state.params, state.m, state.v, state.t),
            order.reshape(num_batches, BATCH_SIZE),
        )
        loss = losses.sum() / n
        stale = jnp.where(loss > state.best - TOL, state.stale + 1, 0)
        return _State(params, m, v, t, key, state.epochs + 1, jnp.minimum(loss, state.best), stale)

    def running(state: _State):
        return (state.epochs < max_epochs) & (state.stale <= N_ITER_NO_CHANGE)

    state = _State(
        params=params,
        m=zeros,
        v=zeros,
        t=jnp.zeros((), x.dtype),
        key=k_shuffle,
        epochs=jnp.zeros((), jnp.int32),
        best=jnp.array(jnp.inf, x.dtype),
        stale=jnp.zeros((), jnp.int32),
    )
    state = jax.lax.while_loop(running, epoch, state)
    return state.params, state.epochs


def mlp_classifier_accuracy(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    hidden: tuple[int, ...],
    seed: int,
    max_epochs: int = 10_000,
) -> tuple[float, int]:
    """Held-out accuracy of the classifier trained on ``(x_train, y_train)``, and the
    number of epochs trained. ``x`` ``(n, d)``, ``y`` ``(n,)`` in {0, 1}."""
    params, epochs = _train(
        jax.random.key(seed),
        jnp.asarray(x_train, jnp.float32),
        jnp.asarray(y_train, jnp.float32),
        hidden=tuple(int(h) for h in hidden),
        max_epochs=int(max_epochs),
    )
    predicted = np.asarray(_logits(params, jnp.asarray(x_test, jnp.float32))) > 0
    return float(np.mean(predicted == (np.asarray(y_test) > 0.5))), int(epochs)


@functools.partial(jax.jit, static_argnames=("hidden", "max_epochs"))
def _train_many(keys, x, y, hidden: tuple[int, ...], max_epochs: int):
    # vmapped while_loop: every classifier steps until the last one stops; a stopped one
    # keeps its state (JAX selects the old carry where the condition is false)
    return jax.vmap(lambda k, xi, yi: _train(k, xi, yi, hidden=hidden, max_epochs=max_epochs))(
        keys, x, y
    )


def mlp_classifier_accuracies(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    hidden: tuple[int, ...],
    seeds: np.ndarray,
    max_epochs: int = 10_000,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mlp_classifier_accuracy` for a stack of problems of one size, trained as one
    vmapped program: ``x_train`` ``(B, n, d)``, ``y_train`` ``(B, n)``, ``x_test``
    ``(B, m, d)``, ``y_test`` ``(B, m)``, ``seeds`` ``(B,)``; returns the accuracies and
    epochs, ``(B,)`` each. On a GPU, B classifiers cost about as much as one."""
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
    params, epochs = _train_many(
        keys,
        jnp.asarray(x_train, jnp.float32),
        jnp.asarray(y_train, jnp.float32),
        hidden=tuple(int(h) for h in hidden),
        max_epochs=int(max_epochs),
    )
    logits = np.asarray(jax.vmap(_logits)(params, jnp.asarray(x_test, jnp.float32)))
    accuracy = np.mean((logits > 0) == (np.asarray(y_test) > 0.5), axis=1)
    return accuracy, np.asarray(epochs)
