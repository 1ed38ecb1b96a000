"""Default optimizer: AdamW on a warmup-cosine schedule with global-norm gradient clipping."""

from __future__ import annotations

import functools

import optax


def default_optimizer(
    learning_rate: float,
    total_steps: int,
    weight_decay: float = 1e-4,
    clip_norm: float = 1.5,
    warmup_fraction: float = 0.05,
) -> optax.GradientTransformation:
    """Linear warmup over ``warmup_fraction`` of the steps to ``learning_rate``, cosine
    decay to ``learning_rate / 100`` at ``total_steps``; AdamW; clip gradients to
    ``clip_norm``.

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
    )


@functools.lru_cache(maxsize=32)
def _build(learning_rate, total_steps, weight_decay, clip_norm, warmup_fraction):
    warmup = max(1, int(warmup_fraction * total_steps))
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=learning_rate / 10,
        peak_value=learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=learning_rate / 100,
    )
    return optax.chain(
        optax.clip_by_global_norm(clip_norm), optax.adamw(schedule, weight_decay=weight_decay)
    )
