"""Default optimizer: AdamW on a warmup-cosine schedule times a plateau scale, with
global-norm gradient clipping, and optionally an exponential moving average of the
parameters that training then evaluates and returns.

The plateau scale is a number in the optimizer state that multiplies every update; the
training loop lowers it between epochs when the validation loss stops improving
(:mod:`amortized.training.stopping`). It lives in the state, not in the compiled step, so
changing it does not compile anything again.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

#: Decay of the parameters' moving average (:func:`track_average`) in the default optimizer
#: (0: none). 0.999 averages about the last 1,000 steps (a few epochs at batch 32): it gave
#: better posteriors on the scenario suite and two_moons at equal epochs, though worse on
#: one universe of the multiverse benchmark; the stop's smallest counted gain
#: (:data:`~amortized.training.stopping.MIN_GAIN`) keeps most runs about as long as
#: without it (BENCHMARKS.md, LOG sessions 27-28).
AVERAGE_DECAY = 0.999

#: At most this many warm-up steps: 5% of a long cap on epochs (early stopping) would warm
#: up for dozens of epochs that the run may never reach.
MAX_WARMUP_STEPS = 1000


class PlateauScale(NamedTuple):
    """Optimizer state of :func:`scale_by_plateau`: the factor applied to every update."""

    scale: jax.Array


def scale_by_plateau() -> optax.GradientTransformation:
    """Multiply updates by the state's ``scale`` (1 at the start; set it with
    :func:`set_learning_rate_scale`). After AdamW this scales the learning rate (and the
    weight decay with it, as a schedule does).

    >>> import jax.numpy as jnp
    >>> t = scale_by_plateau()
    >>> s = set_learning_rate_scale(t.init({"w": jnp.ones(2)}), 0.5)
    >>> t.update({"w": jnp.ones(2)}, s)[0]["w"].tolist()
    [0.5, 0.5]
    """

    def init(params):
        del params
        return PlateauScale(jnp.ones((), jnp.float32))

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: u * state.scale.astype(u.dtype), updates), state

    return optax.GradientTransformation(init, update)


class ParameterAverage(NamedTuple):
    """Optimizer state of :func:`track_average`: the average and the steps it has seen."""

    average: Any
    count: jax.Array


def track_average(decay: float) -> optax.GradientTransformation:
    """Leave the updates unchanged and keep an exponential moving average of the parameters
    after each update, ``a <- d a + (1 - d) (params + updates)`` with
    ``d = min(decay, (1 + t) / (10 + t))`` at step ``t`` (the warm-up keeps the first steps'
    random weights from lingering in the average). Put it last in a chain.

    Why: at batch 32 the last step's weights carry the noise of the last few batches'
    gradients; their average over about ``1 / (1 - decay)`` steps is closer to the minimum
    the noise circles, so a network returned (and validated) as the average usually
    estimates the posterior more accurately per training step (Polyak averaging; the same
    reason diffusion models sample from averaged weights). The averaged loss falls smoothly
    and keeps improving by small amounts, which is why the stop counts only gains of at
    least :data:`~amortized.training.stopping.MIN_GAIN` nats per epoch (else averaged runs
    went on for tens of epochs at negligible gains). Training itself continues from the
    unaveraged weights. :func:`averaged_params` reads the average.

    >>> import jax.numpy as jnp
    >>> t = track_average(0.5)
    >>> s = t.init(jnp.zeros(2))
    >>> _, s = t.update(jnp.ones(2), s, jnp.zeros(2))  # d = 0.1 at the first step
    >>> averaged_params(s).tolist()
    [0.8999999761581421, 0.8999999761581421]
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"track_average: decay must lie in [0, 1), got {decay}")

    def init(params):
        return ParameterAverage(jax.tree.map(jnp.asarray, params), jnp.zeros((), jnp.int32))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("track_average needs the parameters in update(..., params)")
        t = state.count.astype(jnp.float32)
        d = jnp.minimum(decay, (1.0 + t) / (10.0 + t))
        average = jax.tree.map(
            lambda a, p, u: (d * a + (1.0 - d) * (p + u)).astype(a.dtype),
            state.average,
            params,
            updates,
        )
        return updates, ParameterAverage(average, state.count + 1)

    return optax.GradientTransformation(init, update)


def _states_of(opt_state: Any, kind: type) -> list:
    """Every node of type ``kind`` in an optimizer state (optax chains nest tuples)."""
    is_kind = lambda node: isinstance(node, kind)  # noqa: E731
    return [n for n in jax.tree.leaves(opt_state, is_leaf=is_kind) if is_kind(n)]


def averaged_params(opt_state: Any) -> Any:
    """The parameter average that :func:`track_average` keeps in ``opt_state`` (the
    parameters' structure: one flat vector when the optimizer sees them flat), or ``None``
    when the optimizer keeps none (a user's own optimizer). Two averages in one optimizer
    raise: which one the networks should be is not defined."""
    found = _states_of(opt_state, ParameterAverage)
    if len(found) > 1:
        raise ValueError(
            f"the optimizer keeps {len(found)} parameter averages (track_average appears "
            "more than once in its chain); keep one"
        )
    return found[0].average if found else None


def _is_plateau(node: Any) -> bool:
    return isinstance(node, PlateauScale)


def has_learning_rate_scale(opt_state: Any) -> bool:
    """Whether ``opt_state`` holds a :class:`PlateauScale` (a user's own optimizer does
    not: the plateau rule then only stops training)."""
    return bool(_states_of(opt_state, PlateauScale))


def set_learning_rate_scale(opt_state: Any, scale: float) -> Any:
    """``opt_state`` with every :class:`PlateauScale` set to ``scale``, placed like the old
    value (a compiled epoch is specialized to where its inputs live)."""

    def put(node):
        if not _is_plateau(node):
            return node
        new = jnp.asarray(scale, node.scale.dtype)
        return PlateauScale(jax.device_put(new, node.scale.sharding))

    return jax.tree.map(put, opt_state, is_leaf=_is_plateau)


def default_optimizer(
    learning_rate: float,
    total_steps: int,
    weight_decay: float = 1e-4,
    clip_norm: float = 1.5,
    warmup_fraction: float = 0.05,
    average_decay: float | None = None,
) -> optax.GradientTransformation:
    """Linear warmup over ``warmup_fraction`` of the steps (at most
    ``MAX_WARMUP_STEPS``) to ``learning_rate``, cosine decay to ``learning_rate / 100`` at
    ``total_steps``, times the plateau scale (:func:`scale_by_plateau`); AdamW; clip
    gradients to ``clip_norm``; the parameters' moving average with ``average_decay``
    (:func:`track_average`; ``None``: :data:`AVERAGE_DECAY`, 0: no average), which
    :func:`~amortized.training.fit.fit` validates and returns.

    The same settings return the same object: the compiled training epoch is specialized
    to its optimizer, so a second fit with the same settings (another ensemble member,
    another analysis of a multiverse) reuses the compiled epoch instead of compiling it
    again.

    >>> opt = default_optimizer(5e-4, total_steps=1000)
    """
    if not learning_rate > 0:
        raise ValueError(f"learning rate must be positive, got {learning_rate}")
    return _build(
        float(learning_rate),
        int(total_steps),
        float(weight_decay),
        float(clip_norm),
        float(warmup_fraction),
        float(AVERAGE_DECAY if average_decay is None else average_decay),
    )


@functools.lru_cache(maxsize=32)
def _build(learning_rate, total_steps, weight_decay, clip_norm, warmup_fraction, average_decay):
    warmup = max(1, min(MAX_WARMUP_STEPS, int(warmup_fraction * total_steps)))
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=learning_rate / 10,
        peak_value=learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=learning_rate / 100,
    )
    parts = [
        optax.clip_by_global_norm(clip_norm),
        optax.adamw(schedule, weight_decay=weight_decay),
        scale_by_plateau(),
    ]
    if average_decay != 0:  # a negative decay reaches track_average, which names it
        parts.append(track_average(average_decay))
    return optax.chain(*parts)
