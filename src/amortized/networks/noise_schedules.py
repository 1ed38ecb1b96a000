"""Noise schedules of the diffusion model, as pure functions of a time ``t`` in [0, 1].

A variance-preserving forward process ``z_t = alpha_t x + sigma_t eps`` with
``alpha^2 = sigmoid(lambda)``, ``sigma^2 = sigmoid(-lambda)`` is described by its log
signal-to-noise ratio ``lambda(t) = log(alpha_t^2 / sigma_t^2)``, decreasing from
``lambda_max`` at ``t = 0`` (the data end) to ``lambda_min`` at ``t = 1`` (the noise end).
A schedule decides two things: where the sampler's fixed steps in ``t`` fall (through
``lambda(t)``), and which noise levels training sees (:func:`training_log_snr`).

- ``"edm"`` (Karras et al. 2022): the noise scale of the equivalent variance-exploding
  process ``sigma_VE = sigma / alpha = exp(-lambda / 2)`` runs from ``sigma_min`` to
  ``sigma_max`` as ``sigma_VE(t) = (sigma_min^(1/rho) + t (sigma_max^(1/rho) -
  sigma_min^(1/rho)))^rho``, which crowds the steps at low noise, where the posterior's
  fine structure is decided; training draws ``log sigma_VE ~ N(p_mean, p_std^2)``.
  Defaults: ``sigma_min=0.002, sigma_max=80, rho=7, p_mean=-2, p_std=2``. EDM's own
  ``p_mean=-1.2, p_std=1.2`` were chosen for images, whose structure lives at noise levels
  near the data's scale. A posterior, standardized by the prior's scale, is often 10-100
  times narrower, and its shape is decided at ``sigma_VE`` of 0.01-0.1, where EDM's values
  put 18% of the training draws and these 34%; a weakly informed posterior (sd near 1)
  needs the levels 0.3-3 (EDM 47%, these 28%). A lower mean (-3) gained little on narrow
  posteriors and biased wide ones in the tails of the prior predictive (benchmarks/LOG.md,
  session 33).
- ``"cosine"`` (Nichol & Dhariwal 2021): ``lambda(t) = -2 log tan(pi u / 2)`` with ``u``
  spanning ``[u(lambda_max), u(lambda_min)]`` linearly in ``t``; training draws ``t``
  uniformly. Defaults: ``log_snr_min=-15, log_snr_max=15``.

With standardized targets (unit scale, as the approximator gives them) these are EDM's own
conventions with ``sigma_data = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from .._validation import check_choice, strict_kwargs

SCHEDULE_DEFAULTS: dict[str, dict[str, float]] = {
    "edm": {"sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "p_mean": -2.0, "p_std": 2.0},
    "cosine": {"log_snr_min": -15.0, "log_snr_max": 15.0},
}


def schedule_options(
    owner: str, schedule: str, kwargs: Mapping[str, Any] | None
) -> dict[str, float]:
    """The schedule's defaults updated by ``kwargs`` (only its own keys), checked."""
    check_choice(owner, "noise_schedule", schedule, sorted(SCHEDULE_DEFAULTS))
    where = f"{owner}(schedule_kwargs) for noise_schedule={schedule!r}"
    opts = SCHEDULE_DEFAULTS[schedule] | strict_kwargs(
        where, kwargs, tuple(SCHEDULE_DEFAULTS[schedule])
    )
    opts = {k: float(v) for k, v in opts.items()}
    if schedule == "edm" and min(opts["sigma_min"], opts["rho"], opts["p_std"]) <= 0:
        raise ValueError(f"{where}: sigma_min, rho and p_std must be positive, got {opts}")
    lo, hi = log_snr_range(schedule, opts)
    if not lo < hi:
        raise ValueError(
            f"{where}: the noise range is empty (log-SNR from {hi} down to {lo}); "
            f"{'sigma_min < sigma_max' if schedule == 'edm' else 'log_snr_min < log_snr_max'} "
            f"is needed"
        )
    return opts


def log_snr_range(schedule: str, opts: Mapping[str, float]) -> tuple[float, float]:
    """``(lambda_min, lambda_max)``: the log-SNR at the noise end and at the data end."""
    if schedule == "edm":
        return -2.0 * math.log(opts["sigma_max"]), -2.0 * math.log(opts["sigma_min"])
    return opts["log_snr_min"], opts["log_snr_max"]


def karras_noise(u: jax.Array, lo: float, hi: float, rho: float) -> jax.Array:
    """``(lo^(1/rho) + u (hi^(1/rho) - lo^(1/rho)))^rho``: noise levels from ``lo`` (u = 0)
    to ``hi`` (u = 1), crowded at the low end for ``rho > 1`` (Karras et al. 2022, eq. 5;
    also the consistency models' discretization)."""
    inv = 1.0 / rho
    return (lo**inv + u * (hi**inv - lo**inv)) ** rho


def log_snr(schedule: str, t: jax.Array, opts: Mapping[str, float]) -> jax.Array:
    """``lambda(t)`` for ``t`` in [0, 1] (any shape): ``lambda_max`` at 0, ``lambda_min``
    at 1."""
    if schedule == "edm":
        sigma = karras_noise(t, opts["sigma_min"], opts["sigma_max"], opts["rho"])
        return -2.0 * jnp.log(sigma)
    u0 = jnp.arctan(jnp.exp(-0.5 * opts["log_snr_max"]))
    u1 = jnp.arctan(jnp.exp(-0.5 * opts["log_snr_min"]))
    return -2.0 * jnp.log(jnp.tan(u0 + t * (u1 - u0)))


def training_log_snr(schedule: str, key: jax.Array, n: int, opts: Mapping[str, float]) -> jax.Array:
    """``n`` training noise levels ``lambda`` ``(n,)``, within the sampler's range."""
    lo, hi = log_snr_range(schedule, opts)
    if schedule == "edm":
        log_sigma = opts["p_mean"] + opts["p_std"] * jax.random.normal(key, (n,))
        return jnp.clip(-2.0 * log_sigma, lo, hi)
    return log_snr(schedule, jax.random.uniform(key, (n,)), opts)


def alpha_sigma(lam: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``alpha = sqrt(sigmoid(lambda))``, ``sigma = sqrt(sigmoid(-lambda))``."""
    return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))
