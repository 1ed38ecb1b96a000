"""StableConsistencyModel: continuous-time consistency training in the TrigFlow
parameterization (sCM; Lu & Song 2024, "Simplifying, Stabilizing and Scaling
Continuous-Time Consistency Models").

Forward process on standardized targets: ``x_t = cos(t) x + sin(t) z``, ``z ~ N(0, s^2 I)``
(``s = sigma``, the data scale), ``t`` in ``[0, pi/2]``. The consistency function is

    f(x_t, t, c) = cos(t) x_t - sin(t) s F(x_t / s, 0.02 t / pi, c),

the identity at ``t = 0`` by construction. Training asks ``f`` to be constant along the
probability-flow trajectory through ``x_t``, whose velocity is estimated by ``dx_t/dt =
cos(t) z - sin(t) x`` (consistency training: no teacher model). With ``F^-`` the network
without gradient, the time derivative along the trajectory, scaled by ``cos(t)``, is

    g = cos(t) df^-/dt = -cos(t)^2 (s F^- - dx_t/dt) - (cos(t) sin(t) x_t + J),
    J = s cos(t) sin(t) dF^-/dt  (one forward-mode product through F, exact),

and the loss's gradient is that of ``|F - F^- - g'|^2`` with ``g' = g / (|g| + 0.1)``
(tangent normalization, for stability). A small MLP ``w(t)`` learns the loss weighting
across noise levels (adaptive weighting: ``exp(-w) / dim * |F - F^- - g'|^2 + w``, minimized
by ``w`` = log of the mean squared residual at ``t``). Training times: ``tan(t) = e^tau / s``
with ``tau ~ N(-1.0, 1.6^2)``. No ``total_steps``: the objective does not change over
training. The validation loss (``train=False``) is the unweighted mean of
``|F - F^- - g'|^2 / dim``, comparable across epochs while ``w`` is still learning.

Sampling is multistep consistency sampling (as for
:class:`~amortized.networks.ConsistencyModel`): ``x = f(s z, pi/2)``, then at each later
time ``t_n``, ``x = f(cos(t_n) x + sin(t_n) s z_n, t_n)``; the times are ``arctan(sigma_n /
s)`` for a Karras grid of noise levels ``sigma_n`` between 80 and 0.002 (the first replaced
by ``pi / 2``, pure noise). No tractable density (:attr:`log_prob_caveat`).

With ``conditional_standardization=True`` (the default) all of the above applies to the
residual ``r = (x - m(c)) / s(c)`` of a learned Gaussian fit of the posterior, and draws
are ``m(c) + s(c) r`` (:mod:`~amortized.networks.conditional_standardization`): the loss
then weighs errors relative to the posterior's width, not the prior's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_positive_int, strict, strict_kwargs
from . import conditional_standardization as cs
from .base import InferenceNetwork, encode_config
from .consistency_model import multistep_sample, no_density_caveat
from .guidance import check_guidance, guided, guided_time_field, training_conditions
from .image_field import check_layout, subnet_config
from .mlp import MLP, fourier_time_embedding, split_dropout_key
from .noise_schedules import karras_noise

#: Lu & Song (2024), consistency training: the log-normal proposal of training noise levels
SCM_P_MEAN, SCM_P_STD = -1.0, 1.6
#: tangent normalization constant (Lu & Song 2024, section 4.2)
TANGENT_C = 0.1
#: The field sees the time as ``t * 0.02 / pi`` (in [0, 0.01]): Lu & Song (2024) found
#: high-frequency time embeddings destabilize continuous-time consistency training, since
#: the training target contains dF/dt. With the TimeMLP's Fourier frequencies (1 to 32
#: cycles per unit) on ``2 t / pi``, training on a conjugate normal model drifted away
#: from the posterior (means off by 0.3-40); scaled by 0.01, the frequencies span 0.01 to
#: 0.32 cycles over the whole time range and training converged (benchmarks/LOG.md).
TIME_INPUT_SCALE = 0.02 / math.pi
WEIGHT_MLP_OPTIONS = ("widths", "activation", "dropout", "residual")
WEIGHT_TIME_EMBEDDING = 16


def trig_tangent(F_minus, jvp_out, x_t, dxdt, t, sigma):
    """``g = cos(t) df^-/dt`` along the trajectory (module docstring), rows ``(B, dim)``
    with ``t`` ``(B, 1)``."""
    cos, sin = jnp.cos(t), jnp.sin(t)
    return -(cos**2) * (sigma * F_minus - dxdt) - (cos * sin * x_t + jvp_out)


class StableConsistencyModel(InferenceNetwork):
    """Continuous-time consistency model (sCM) with learned loss weighting (module
    docstring).

    Parameters
    ----------
    subnet : {"time_mlp", "mlp"}, default "time_mlp"
    sigma : float, default 1.0
        The data scale ``s`` (1: the standardized targets').
    subnet_kwargs : dict, optional
        :class:`~amortized.networks.TimeMLP` options (``widths`` default (256, 256, 256),
        ``activation``, ``dropout`` default 0.05, ``residual``, ``time_embedding_dim``).
    weight_mlp_kwargs : dict, optional
        The weighting MLP's ``widths`` (default (256,)), ``activation``, ``dropout``
        (default 0.0), ``residual``.
    sampling_steps : int, default 10
        Network evaluations per draw (1: one-step sampling).
    drop_cond_prob : float, default 0.0
        Classifier-free guidance training (:mod:`~amortized.networks.guidance`).
    guidance_scale : float, default 0.0
        Guidance at sampling, applied to ``F``; needs ``drop_cond_prob > 0``.
    conditional_standardization : bool, default True
        Model the residual of a learned Gaussian fit of the posterior
        (:mod:`~amortized.networks.conditional_standardization`), so that the loss weights
        errors relative to the posterior's width, not the prior's.

    Examples
    --------
    >>> net = StableConsistencyModel(subnet_kwargs={"widths": [256, 256, 256], "dropout": 0.05})
    >>> net.config["sigma"]
    1.0
    """

    field: eqx.Module | None
    weight: MLP | None
    sigma: float = eqx.field(static=True)
    sampling_steps: int = eqx.field(static=True)
    drop_cond_prob: float = eqx.field(static=True)
    guidance_scale: float = eqx.field(static=True)
    standardizer: eqx.Module | None = None

    has_log_prob = False
    validation_loss_ranks_epochs = False
    legacy_config = cs.LEGACY_CONFIG

    @strict
    def __init__(
        self,
        subnet: str = "time_mlp",
        sigma: float = 1.0,
        subnet_kwargs: Mapping[str, Any] | None = None,
        weight_mlp_kwargs: Mapping[str, Any] | None = None,
        sampling_steps: int = 10,
        drop_cond_prob: float = 0.0,
        guidance_scale: float = 0.0,
        conditional_standardization: bool = True,
        dim: int = 0,
        cond_dim: int = 0,
        key: jax.Array | None = None,
        layout: tuple | None = None,
    ):
        owner = "StableConsistencyModel"
        if not float(sigma) > 0.0:
            raise ValueError(f"{owner}: sigma must be positive, got {sigma!r}")
        sampling_steps = check_positive_int(owner, "sampling_steps", sampling_steps)
        subnet, sub = subnet_config(owner, subnet, subnet_kwargs)
        wopts = {"widths": [256], "dropout": 0.0} | strict_kwargs(
            f"{owner}(weight_mlp_kwargs)", weight_mlp_kwargs, WEIGHT_MLP_OPTIONS
        )
        wopts["widths"] = list(wopts["widths"])
        check_guidance(owner, float(drop_cond_prob), float(guidance_scale))
        self.config_json = encode_config(
            subnet=subnet,
            sigma=float(sigma),
            subnet_kwargs=sub,
            weight_mlp_kwargs=wopts,
            sampling_steps=sampling_steps,
            drop_cond_prob=float(drop_cond_prob),
            guidance_scale=float(guidance_scale),
            conditional_standardization=cs.check_option(owner, conditional_standardization),
        )
        self.sigma = float(sigma)
        self.sampling_steps = sampling_steps
        self.drop_cond_prob = float(drop_cond_prob)
        self.guidance_scale = float(guidance_scale)
        self.dim, self.cond_dim = int(dim), int(cond_dim)
        self.layout = check_layout(type(self).__name__, layout, self.dim, self.cond_dim)
        self.standardizer = cs.build_head(
            conditional_standardization, self.dim, self.cond_dim, cs.head_key(key), self.layout
        )
        if self.dim == 0:
            self.field = self.weight = None
            return
        kf, kw = jax.random.split(key) if key is not None else (None, None)
        self.field = guided_time_field(
            owner, self.dim, self.cond_dim, self.drop_cond_prob, subnet, sub, kf, self.layout
        )
        # starts at w = 0 (unit weights at every noise level)
        self.weight = MLP(WEIGHT_TIME_EMBEDDING + 1, 1, zero_output=True, key=kw, **wopts)

    @property
    def log_prob_caveat(self) -> str:
        return no_density_caveat("StableConsistencyModel")

    # -- pieces ------------------------------------------------------------------------------
    def _F(self, u, t, cond_in, key=None):
        """The network ``F(u, t * TIME_INPUT_SCALE, c)`` for one example."""
        return self.field(jnp.concatenate([u, cond_in]), t * TIME_INPUT_SCALE, key)

    def consistency(self, x, t, ci):
        """``f(x_t, t, c)`` for one example with its raw condition ``ci`` (guided)."""
        f = guided(
            lambda c: self._F(x / self.sigma, t, c),
            ci,
            self.drop_cond_prob,
            self.guidance_scale,
        )
        return jnp.cos(t) * x - jnp.sin(t) * self.sigma * f

    def log_weight(self, t):
        """The learned log loss weight ``w(t)`` (scalar) at a scalar time ``t``."""
        emb = fourier_time_embedding(t * (2.0 / math.pi), WEIGHT_TIME_EMBEDDING)
        return self.weight(emb)[0]

    def sampling_times(self) -> jax.Array:
        """The ``sampling_steps`` times of multistep sampling, from ``pi / 2`` down."""
        u = jnp.linspace(1.0, 0.0, self.sampling_steps + 1)[:-1]
        times = jnp.arctan(karras_noise(u, 0.002, 80.0, 7.0) / self.sigma)
        return times.at[0].set(math.pi / 2)

    # -- the network's interface ---------------------------------------------------------------
    def tangent(self, x, z, t, cond_in, keys):
        """``(x_t, F^-(x_t), g)`` for rows ``x``, noise ``z`` (scale ``sigma``), times ``t``
        ``(B,)``: the quantities of the training target (module docstring), without
        gradient."""
        s = self.sigma
        tc = t[:, None]
        x_t = jnp.cos(tc) * x + jnp.sin(tc) * z
        dxdt = jnp.cos(tc) * z - jnp.sin(tc) * x
        cs = jnp.cos(tc) * jnp.sin(tc)

        def one(ui, ti, ci, ki, du, dt):
            return jax.jvp(lambda u, tt: self._F(u, tt, ci, ki), (ui, ti), (du, dt))

        F_minus, jvp_out = jax.vmap(one, in_axes=(0, 0, 0, 0 if keys is not None else None, 0, 0))(
            x_t / s, t, cond_in, keys, cs * dxdt, s * cs[:, 0]
        )
        g = trig_tangent(F_minus, jvp_out, x_t, dxdt, tc, s)
        return jax.lax.stop_gradient((x_t, F_minus, g))

    def loss(self, x, cond, key, train=True, step=None):
        x, head_loss = cs.residual_for_training(self.standardizer, x, cond)
        kt, kz, kc, kd = jax.random.split(key, 4)
        n = x.shape[0]
        tau = SCM_P_MEAN + SCM_P_STD * jax.random.normal(kt, (n,))
        t = jnp.arctan(jnp.exp(tau) / self.sigma)
        z = self.sigma * jax.random.normal(kz, x.shape)
        cond_in = training_conditions(kc, cond, self.drop_cond_prob)
        keys = split_dropout_key(kd, n) if train else None
        x_t, F_minus, g = self.tangent(x, z, t, cond_in, keys)
        g = g / (jnp.linalg.norm(g, axis=-1, keepdims=True) + TANGENT_C)
        F = jax.vmap(
            lambda ui, ti, ci, ki: self._F(ui, ti, ci, ki),
            in_axes=(0, 0, 0, 0 if train else None),
        )(x_t / self.sigma, t, cond_in, keys)
        residual = jnp.sum((F - F_minus - g) ** 2, axis=-1) / self.dim
        if not train:
            # the learned weights change over training; the unweighted residual (the
            # normalized consistency violation) compares epochs on one objective
            return jnp.mean(residual) + head_loss
        w = jax.vmap(self.log_weight)(t)
        return jnp.mean(jnp.exp(-w) * residual + w) + head_loss

    def sample(self, key, cond):
        self._require_built("sample")
        kz, ks = jax.random.split(key)
        start = self.sigma * jax.random.normal(kz, (cond.shape[0], self.dim))

        def consistency(x, t):
            return jax.vmap(lambda xi, ci: self.consistency(xi, t, ci))(x, cond)

        def renoise(x, t, noise):
            return jnp.cos(t) * x + jnp.sin(t) * self.sigma * noise

        r = multistep_sample(consistency, start, self.sampling_times(), renoise, ks)
        return cs.from_residual(self.standardizer, r, cond)

    def log_prob(self, x, cond):
        raise NotImplementedError(self.log_prob_caveat)
