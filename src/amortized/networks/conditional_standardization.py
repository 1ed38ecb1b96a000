"""Conditional standardization: a learned Gaussian location-scale fit of the posterior in
front of the consistency models.

Why. The adapter standardizes the inference variables by their prior's scale, and a
consistency model's loss weighs errors in those units: a consistency map that is off by
0.01 costs about 10^-4 of a loss of order one. An informative posterior is often 10-100
times narrower than its prior (sbibm's gaussian_mixture, sir), so an error of a whole
posterior width is nearly free, training never resolves it and the draws come out several
times too wide (a conjugate normal model with posterior sd 0.01 of the prior's: 3.5x;
benchmarks/LOG.md, session 34). A coupling flow does not suffer from it: its negative
log-likelihood is in units of the posterior itself.

What. A small MLP head predicts each dimension's posterior mean ``m(c)`` and log scale
``log s(c)`` from the condition, trained by the Gaussian negative log-likelihood (a
Gaussian posterior estimate, as in Gaussian NPE), and the network models the residual

    r = (x - m(c)) / s(c),      log q(x | c) = log q_r(r | c) - sum_j log s_j(c),

which has about unit scale whatever the data's informativeness, so the network's loss
weights errors relative to the posterior's width. The network is still conditioned on
``c``: the head only changes coordinates, and any shape the Gaussian misses (crescents,
several modes, heavy tails) is the network's to learn. The head's outputs enter the
network's loss without gradient (that loss is not a density of ``x`` and must not pull
``m`` and ``s``); the head's output layer starts at zero, so at the start of training the
map is the identity (``m = 0``, ``s = 1``). ``log s`` is clipped to ``[LOG_SCALE_MIN,
LOG_SCALE_MAX]``.

Not (yet) for flow matching and diffusion models: they are trained with early stopping,
and a head that is still learning moves the residuals, whose spread sets the floor of
their squared-error losses; the validation loss then rises while the posterior improves
and training stopped 4-8x sooner (flow matching on sbibm's sir: 52 epochs instead of 431,
C2ST 0.634 -> 0.669; LOG, session 34).

Image-valued targets and unconditional networks get no head (``None``: every function
here is then the identity): an image's pixels are not a low-dimensional posterior, and
without a condition the adapter's standardization is already the marginal's.

Shapes: ``x``, ``r``: ``(B, dim)``; ``cond``: ``(B, cond_dim)``; log-determinants ``(B,)``.

>>> import jax, jax.numpy as jnp
>>> head = build_head(True, 2, 1, jax.random.key(0), None)
>>> r, log_det = to_residual(head, jnp.ones((3, 2)), jnp.zeros((3, 1)))
>>> r.tolist(), log_det.tolist()  # an untrained head is the identity
([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]], [-0.0, -0.0, -0.0])
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .._validation import check_choice
from .mlp import MLP

#: the head's hidden widths: a regression of two numbers per dimension on the condition
HEAD_WIDTHS = (256, 256)
#: ``log s`` is clipped here (standardized units): a head extrapolating to a far tail
#: dataset cannot blow the residual up or collapse it to a point
LOG_SCALE_MIN, LOG_SCALE_MAX = -10.0, 5.0
#: the constructor option of the networks that use it
OPTION = "conditional_standardization"
#: models saved before the option existed were trained without the head: their stored
#: configurations lack the option, and loading reads it as False (a network's
#: ``legacy_config``, applied by the loader under the stored configuration)
LEGACY_CONFIG = {OPTION: False}


def check_option(owner: str, value: object) -> bool:
    """The option as a bool; anything but True or False (a string, None) is refused by
    name rather than read by its truthiness."""
    check_choice(owner, OPTION, value, (True, False))
    return bool(value)


def build_head(
    enabled: bool, dim: int, cond_dim: int, key: jax.Array | None, layout: tuple | None
) -> MLP | None:
    """The head ``(cond_dim,) -> (2 dim,)`` (means, then log scales), or None where it does
    not apply: switched off, unbuilt network, no condition, or an image-valued target."""
    if not enabled or dim == 0 or cond_dim == 0 or layout is not None:
        return None
    if key is None:
        raise ValueError("conditional standardization: building the head needs a PRNG key")
    return MLP(cond_dim, 2 * dim, widths=HEAD_WIDTHS, dropout=0.0, zero_output=True, key=key)


def head_key(key: jax.Array | None) -> jax.Array | None:
    """The head's key, derived from the network's build key without consuming it (so that
    the rest of the network is built as without the head)."""
    return None if key is None else jax.random.fold_in(key, 0x5EAD)


def location_scale(
    head: MLP, cond: jax.Array, training: bool = False
) -> tuple[jax.Array, jax.Array]:
    """``m(c)`` and ``log s(c)``, each ``(B, dim)``. ``training``: batch-wise matrix
    products (:meth:`MLP.train_rows`; the head has no dropout, so no keys), which support
    reverse-mode derivatives only."""
    out = head.train_rows(cond, None) if training else jax.vmap(head)(cond)
    dim = out.shape[-1] // 2
    return out[:, :dim], jnp.clip(out[:, dim:], LOG_SCALE_MIN, LOG_SCALE_MAX)


def gaussian_nll(x: jax.Array, m: jax.Array, log_s: jax.Array) -> jax.Array:
    """Mean over rows of ``-log N(x; m, diag(s^2))`` (nats per example)."""
    z = (x - m) * jnp.exp(-log_s)
    per_row = jnp.sum(0.5 * z**2 + log_s, axis=-1) + 0.5 * x.shape[-1] * math.log(2 * math.pi)
    return jnp.mean(per_row)


def residual_for_training(
    head: MLP | None, x: jax.Array, cond: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``(r, head_loss)``: the residuals the network trains on (the head's outputs without
    gradient) and the head's own loss, to be added to the network's (zero without a
    head)."""
    if head is None:
        return x, jnp.zeros((), x.dtype)
    m, log_s = location_scale(head, cond, training=True)
    loss = gaussian_nll(x, m, log_s)
    m, log_s = jax.lax.stop_gradient((m, log_s))
    return (x - m) * jnp.exp(-log_s), loss


def to_residual(head: MLP | None, x: jax.Array, cond: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(r, log_det)`` with ``log_det = -sum_j log s_j(c)`` ``(B,)``, the log-Jacobian of
    ``x -> r``: ``log q(x | c) = log q_r(r | c) + log_det``."""
    if head is None:
        return x, jnp.zeros(x.shape[:1], x.dtype)
    m, log_s = location_scale(head, cond)
    return (x - m) * jnp.exp(-log_s), -jnp.sum(log_s, axis=-1)


def from_residual(head: MLP | None, r: jax.Array, cond: jax.Array) -> jax.Array:
    """``x = m(c) + s(c) r`` ``(B, dim)``: the network's draws in the adapter's units."""
    if head is None:
        return r
    m, log_s = location_scale(head, cond)
    return m + jnp.exp(log_s) * r
