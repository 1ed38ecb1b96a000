"""DiffusionModel: a score-based diffusion model of the posterior (Song et al. 2021, with
the parameterizations of Karras et al. 2022 and Salimans & Ho 2022).

Forward process (variance preserving, on standardized targets): ``z = alpha x + sigma eps``,
``alpha^2 = sigmoid(lambda)``, ``sigma^2 = sigmoid(-lambda)``, with the log-SNR ``lambda(t)``
of the noise schedule (:mod:`~amortized.networks.noise_schedules`, ``"edm"`` or
``"cosine"``). A time-conditioned MLP sees ``(z, c, tau)``, ``tau`` the noise level scaled to
[0, 1], and its output ``out`` is read by ``prediction_type``:

- ``"F"`` (default): EDM's preconditioned output. With unit data scale EDM's denoiser
  ``c_skip z_VE + c_out F`` is ``x_hat = alpha z + sigma F`` here, so ``out = 0`` is already
  the best denoiser of standard normal targets, and ``F = sigma x - alpha eps = -v``.
- ``"velocity"``: ``v = alpha eps - sigma x``, so ``x_hat = alpha z - sigma v``.
- ``"noise"``: ``eps`` itself. ``"x"``: ``x`` itself.

``loss_type`` (``"F"``, ``"velocity"``, ``"noise"``, ``"x"``) is the space the squared error
is measured in. An error ``e_x`` of ``x_hat`` is ``e_x / sigma`` in velocity (and F) units,
``(alpha / sigma) e_x`` in noise units; the loss is the prediction's own residual rescaled
by that ratio. ``loss_type="F"`` with the EDM schedule is EDM's weighted loss
``(sigma_VE^2 + 1) / sigma_VE^2 |x_hat - x|^2`` at EDM's training noise levels.

Sampling integrates the probability-flow ODE from ``z(1) ~ N(0, I)`` to ``t = 0``,

    dz/dt = lambda'(t) sigma / 2 (sigma z - eps_hat)

(fixed steps in ``t``, so the schedule places them), or, with an SDE method, the reverse-time
SDE in ``s = 1 - t``: ``dz = lambda'(t) sigma (eps_hat - sigma z / 2) ds + sigma
sqrt(-lambda'(t)) dW_s``. Draws are ``z(0)`` (noise ``sigma_min``, 0.002 of the posterior's
scale by default, is left in them, so that the density below is theirs).
``log_prob`` is the instantaneous change of variables along the same ODE with the exact
trace (``dim`` forward-mode products per step): the density of the ODE sampler's draws. An
SDE sampler's draws follow another distribution, so with an SDE method ``log_prob`` carries
a caveat (:attr:`log_prob_caveat`) and the amortized Bayesian workflow will not use it as
importance weights' denominator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_choice, strict
from .base import InferenceNetwork, RandomDrawLoss, encode_config
from .guidance import check_guidance, guided, guided_time_field, training_conditions
from .image_field import check_layout, subnet_config
from .integrate import (
    ODE_SOLVERS,
    SDE_SOLVERS,
    integrate_options,
    ode_log_prob,
    solve_ode,
    solve_sde,
)
from .mlp import split_dropout_key
from .noise_schedules import (
    alpha_sigma,
    log_snr,
    log_snr_range,
    schedule_options,
    training_log_snr,
)

PREDICTION_TYPES = ("F", "velocity", "noise", "x")
DEFAULT_INTEGRATE = {
    "method": "heun",
    "steps": 20,
    "rtol": 1e-3,
    "atol": 1e-5,
    "max_steps": 4096,
}


def _error_scale(kind: str, alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    """An error of ``x_hat`` times this is the error in ``kind``'s units."""
    if kind == "x":
        return jnp.ones_like(sigma)
    if kind == "noise":
        return alpha / sigma
    return 1.0 / sigma  # velocity, F


def prediction_target(kind: str, x, eps, alpha, sigma):
    """What a network of ``prediction_type`` ``kind`` should output for ``z = alpha x +
    sigma eps``."""
    if kind == "x":
        return x
    if kind == "noise":
        return eps
    v = alpha * eps - sigma * x
    return v if kind == "velocity" else -v


def flow_term(kind: str, out, z, alpha, sigma):
    """``sigma z - eps_hat`` from the network output, without dividing by ``alpha`` (small
    at the noise end) where the parameterization allows: for F and velocity it is
    ``+- alpha out``, which keeps the ODE's field bounded at high noise."""
    if kind == "F":
        return alpha * out
    if kind == "velocity":
        return -alpha * out
    if kind == "noise":
        return sigma * z - out
    return alpha * (out - alpha * z) / sigma  # x


class DiffusionModel(RandomDrawLoss, InferenceNetwork):
    """Score-based diffusion model with a time-conditioned MLP (see the module docstring).

    Parameters
    ----------
    subnet : {"time_mlp", "mlp"}, default "time_mlp"
        Backbone (both names give :class:`~amortized.networks.TimeMLP`).
    subnet_kwargs : dict, optional
        TimeMLP options: ``widths`` (default (256, 256, 256)), ``activation``, ``dropout``
        (default 0.05), ``residual``, ``time_embedding_dim``.
    noise_schedule : {"edm", "cosine"}, default "edm"
    schedule_kwargs : dict, optional
        The schedule's constants (edm: ``sigma_min, sigma_max, rho, p_mean, p_std``; cosine:
        ``log_snr_min, log_snr_max``); see :mod:`~amortized.networks.noise_schedules`.
    prediction_type : {"F", "velocity", "noise", "x"}, default "F"
    loss_type : {"F", "velocity", "noise", "x"}, default "F"
    integrate_kwargs : dict, optional
        ``method``: an ODE solver (euler, heun, midpoint, ralston, bosh3, tsit5, dopri5;
        default heun) or an SDE solver for the reverse-time SDE (euler_maruyama, sea,
        shark); ``steps`` (default 20; ``"adaptive"`` with ``rtol``/``atol`` for ODE
        methods); ``max_steps``. The log density always integrates the ODE (with ``heun``
        when an SDE method is chosen for sampling).
    drop_cond_prob : float, default 0.0
        Classifier-free guidance: the share of training examples whose condition is
        dropped (:mod:`~amortized.networks.guidance`).
    guidance_scale : float, default 0.0
        Guidance at sampling, ``(1 + w) eps(c) - w eps(none)``; needs ``drop_cond_prob > 0``.
        Guided draws are sharper than the posterior (fine for images, not for calibrated
        inference).

    Examples
    --------
    >>> net = DiffusionModel(noise_schedule="cosine", prediction_type="velocity",
    ...                      loss_type="velocity", integrate_kwargs={"steps": 30})
    >>> net.config["noise_schedule"]
    'cosine'
    """

    field: eqx.Module | None
    schedule: str = eqx.field(static=True)
    schedule_opts: tuple = eqx.field(static=True)
    prediction: str = eqx.field(static=True)
    loss_kind: str = eqx.field(static=True)
    integrate: tuple = eqx.field(static=True)
    drop_cond_prob: float = eqx.field(static=True)
    guidance_scale: float = eqx.field(static=True)

    @strict
    def __init__(
        self,
        subnet: str = "time_mlp",
        subnet_kwargs: Mapping[str, Any] | None = None,
        noise_schedule: str = "edm",
        schedule_kwargs: Mapping[str, Any] | None = None,
        prediction_type: str = "F",
        loss_type: str = "F",
        integrate_kwargs: Mapping[str, Any] | None = None,
        drop_cond_prob: float = 0.0,
        guidance_scale: float = 0.0,
        dim: int = 0,
        cond_dim: int = 0,
        key: jax.Array | None = None,
        layout: tuple | None = None,
    ):
        check_choice("DiffusionModel", "prediction_type", prediction_type, PREDICTION_TYPES)
        check_choice("DiffusionModel", "loss_type", loss_type, PREDICTION_TYPES)
        sched = schedule_options("DiffusionModel", noise_schedule, schedule_kwargs)
        subnet, sub = subnet_config("DiffusionModel", subnet, subnet_kwargs)
        opts = integrate_options(
            "DiffusionModel", integrate_kwargs, DEFAULT_INTEGRATE, ODE_SOLVERS | SDE_SOLVERS
        )
        check_guidance("DiffusionModel", float(drop_cond_prob), float(guidance_scale))
        self.config_json = encode_config(
            subnet=subnet,
            subnet_kwargs=sub,
            noise_schedule=noise_schedule,
            schedule_kwargs=sched,
            prediction_type=prediction_type,
            loss_type=loss_type,
            integrate_kwargs=opts,
            drop_cond_prob=float(drop_cond_prob),
            guidance_scale=float(guidance_scale),
        )
        self.schedule = noise_schedule
        self.schedule_opts = tuple(sorted(sched.items()))
        self.prediction, self.loss_kind = prediction_type, loss_type
        self.integrate = tuple(sorted(opts.items()))
        self.drop_cond_prob = float(drop_cond_prob)
        self.guidance_scale = float(guidance_scale)
        self.dim, self.cond_dim = int(dim), int(cond_dim)
        self.layout = check_layout(type(self).__name__, layout, self.dim, self.cond_dim)
        if self.dim == 0:
            self.field = None
            return
        self.field = guided_time_field(
            "DiffusionModel",
            self.dim,
            self.cond_dim,
            self.drop_cond_prob,
            subnet,
            sub,
            key,
            self.layout,
        )

    # -- pieces ----------------------------------------------------------------------------
    @property
    def log_prob_caveat(self) -> str | None:
        method = dict(self.integrate)["method"]
        if method in SDE_SOLVERS:
            return (
                f"DiffusionModel(integrate_kwargs={{'method': {method!r}}}) draws from the "
                f"reverse-time SDE, while log_prob is the density of the probability-flow "
                f"ODE's draws, which the SDE's draws follow only in the limit of a perfect "
                f"network and solver; an ODE method (the default, heun) gives draws whose "
                f"density log_prob is"
            )
        return None

    def _sched(self) -> dict[str, float]:
        return dict(self.schedule_opts)

    def _tau(self, lam):
        lo, hi = log_snr_range(self.schedule, self._sched())
        return (hi - lam) / (hi - lo)

    def _out(self, zi, ci_in, lam, key=None):
        return self.field(jnp.concatenate([zi, ci_in]), self._tau(lam), key)

    def _term(self, zi, ci, lam):
        """``sigma z - eps_hat`` for one example with the raw condition ``ci``, guided."""
        alpha, sigma = alpha_sigma(lam)
        out = guided(
            lambda c_in: self._out(zi, c_in, lam),
            ci,
            self.drop_cond_prob,
            self.guidance_scale,
        )
        return flow_term(self.prediction, out, zi, alpha, sigma)

    def _lam(self, t):
        """``lambda(t)`` and ``lambda'(t)`` for a scalar ``t``."""
        return jax.value_and_grad(lambda s: log_snr(self.schedule, s, self._sched()))(t)

    def ode_field(self, zi, ci, t):
        """``dz/dt`` of the probability-flow ODE for one example ``(dim,)``, ``(cond_dim,)``."""
        lam, dlam = self._lam(t)
        _, sigma = alpha_sigma(lam)
        return 0.5 * sigma * dlam * self._term(zi, ci, lam)

    # -- the network's interface -------------------------------------------------------------
    def loss(self, x, cond, key, train=True, step=None):
        kl, ke, kc, kd = jax.random.split(key, 4)
        n = x.shape[0]
        lam = training_log_snr(self.schedule, kl, n, self._sched())
        alpha, sigma = alpha_sigma(lam)
        eps = jax.random.normal(ke, x.shape)
        z = alpha[:, None] * x + sigma[:, None] * eps
        cond_in = training_conditions(kc, cond, self.drop_cond_prob)
        keys = split_dropout_key(kd, n) if train else None
        out = jax.vmap(
            lambda zi, ci, li, ki: self._out(zi, ci, li, ki),
            in_axes=(0, 0, 0, 0 if train else None),
        )(z, cond_in, lam, keys)
        target = prediction_target(self.prediction, x, eps, alpha[:, None], sigma[:, None])
        scale = _error_scale(self.loss_kind, alpha, sigma) / _error_scale(
            self.prediction, alpha, sigma
        )
        return jnp.mean(scale**2 * jnp.sum((out - target) ** 2, axis=-1))

    def sample(self, key, cond):
        self._require_built("sample")
        kz, kw = jax.random.split(key)
        z1 = jax.random.normal(kz, (cond.shape[0], self.dim))
        opts = dict(self.integrate)
        if opts["method"] in SDE_SOLVERS:

            def drift(s, z):
                lam, dlam = self._lam(1.0 - s)
                _, sigma = alpha_sigma(lam)
                term = jax.vmap(lambda zi, ci: self._term(zi, ci, lam))(z, cond)
                return dlam * sigma * (0.5 * sigma * z - term)

            def diffusion(s):
                lam, dlam = self._lam(1.0 - s)
                return alpha_sigma(lam)[1] * jnp.sqrt(-dlam)

            return solve_sde(drift, diffusion, z1, kw, opts)
        return solve_ode(
            lambda t, z: jax.vmap(lambda zi, ci: self.ode_field(zi, ci, t))(z, cond),
            z1,
            1.0,
            0.0,
            opts,
        )

    def log_prob(self, x, cond):
        """log q(x | c) ``(B,)`` by the probability-flow ODE with the exact trace."""
        self._require_built("log_prob")
        opts = dict(self.integrate)
        if opts["method"] in SDE_SOLVERS:
            opts["method"] = "heun"
        return ode_log_prob(self.ode_field, x, cond, 0.0, 1.0, opts)
