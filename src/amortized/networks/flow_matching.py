"""FlowMatching: a conditional velocity field transporting N(0, I) to the posterior.

Training (rectified flow / OT flow matching): x0 ~ N(0, I), x1 ~ data, t ~ p(t),
x_t = (1 - t) x0 + t x1, loss = E |v(x_t, t, c) - (x1 - x0)|^2.
Time sampling: t = u^(1 / (1 + alpha)), u ~ U(0, 1) (``time_power_law_alpha``; alpha > 0
oversamples late times). With ``use_optimal_transport`` the noise draws of a batch are
re-paired with the data by an entropic OT plan (Sinkhorn) before the loss.

Sampling integrates dx/dt = v(x, t, c) from t = 0 to 1 with Diffrax.
Density: log q(x1 | c) = log N(x0) - int_0^1 div v(x_t, t, c) dt, integrated backwards
together with x. By default the divergence is exact, the trace of the Jacobian from ``dim``
forward-mode products, so one density costs about ``dim`` times a sampling pass (the field is
evaluated ``dim`` times per solver stage). Hutchinson's estimator, ``div v ~ e^T (dv/dx) e``
with Rademacher ``e``, costs one product per stage whatever the dimension, but gives an
unbiased *estimate* of log q, not log q: importance weights built on it are biased (the
log of an unbiased estimate is not unbiased) and random. It is used only when asked for
(``exact_divergence_max_dim``, above which dimension to estimate), with a fixed, saved key
(``hutchinson_seed``), and the network says so (``log_prob_is_estimate``), so that the
amortized Bayesian workflow refuses it for importance weights.
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
from .integrate import ODE_SOLVERS, integrate_options, ode_log_prob, solve_ode
from .mlp import split_dropout_key

DEFAULT_INTEGRATE = {
    "method": "midpoint",
    "steps": 16,
    "rtol": 1e-3,
    "atol": 1e-5,
    "max_steps": 4096,
}


def sinkhorn_pairing(key, x0, x1, reg=0.1, iters=50):
    """Indices ``j`` pairing each data point ``x1[i]`` with noise ``x0[j]``, drawn from the
    entropic OT plan between the two empirical measures (squared Euclidean cost)."""
    cost = jnp.sum((x1[:, None, :] - x0[None, :, :]) ** 2, axis=-1)
    cost = cost / jnp.maximum(jnp.mean(cost), 1e-8)
    logk = -cost / reg
    n = x1.shape[0]
    log_a = jnp.full((n,), -jnp.log(n))

    def body(carry, _):
        f, g = carry
        f = log_a - jax.nn.logsumexp(logk + g[None, :], axis=1)
        g = log_a - jax.nn.logsumexp(logk + f[:, None], axis=0)
        return (f, g), None

    (f, g), _ = jax.lax.scan(body, (jnp.zeros(n), jnp.zeros(n)), None, length=iters)
    log_plan = logk + f[:, None] + g[None, :]
    return jax.random.categorical(key, log_plan, axis=1)


class FlowMatching(RandomDrawLoss, InferenceNetwork):
    """Optimal-transport flow matching with a time-conditioned MLP velocity field.

    Parameters
    ----------
    subnet : {"time_mlp", "mlp"}, default "time_mlp"
        Velocity-field backbone (both names give the time-conditioned MLP).
    subnet_kwargs : dict, optional
        :class:`~amortized.networks.TimeMLP` options (``widths`` default (256, 256, 256),
        ``activation``, ``dropout`` default 0.05, ``residual``, ``time_embedding_dim``).
    use_optimal_transport : bool, default False
        Pair noise and data within a batch by an entropic OT plan.
    time_power_law_alpha : float, default 1.0
        Training times t = u^(1/(1+alpha)): with 1, density 2t, so times near the data end,
        where the field of a narrow posterior changes fastest, are drawn more often than
        near the noise end (better posteriors on sbibm's two_moons than uniform times under
        the same fit; benchmarks/LOG.md, session 32).
    integrate_kwargs : dict, optional
        ``method`` (euler, heun, midpoint, ralston, bosh3, tsit5, dopri5; default midpoint),
        ``steps`` (int, default 16, or "adaptive" with ``rtol``/``atol``), ``max_steps``.
    drop_cond_prob : float, default 0.0
        Classifier-free guidance: the share of training examples whose condition is dropped
        (:mod:`~amortized.networks.guidance`).
    guidance_scale : float, default 0.0
        Guidance at sampling, ``(1 + w) v(c) - w v(none)``; needs ``drop_cond_prob > 0``.
        Guided draws are sharper than the posterior (for images, not calibrated inference).
    exact_divergence_max_dim : int or None, default None
        None: ``log_prob`` is exact at any dimension. An int: above this many dimensions
        ``log_prob`` is Hutchinson's estimate (cheaper, but an estimate; see the module
        docstring).
    hutchinson_seed : int, default 0
        Seeds the estimator's probe vectors when no key is passed to ``log_prob``.

    Examples
    --------
    >>> net = FlowMatching(integrate_kwargs={"steps": 20})
    """

    field: eqx.Module | None
    integrate: tuple = eqx.field(static=True)
    use_ot: bool = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    exact_max_dim: int | None = eqx.field(static=True)
    hutchinson_seed: int = eqx.field(static=True)
    drop_cond_prob: float = eqx.field(static=True)
    guidance_scale: float = eqx.field(static=True)

    @strict
    def __init__(
        self,
        subnet: str = "time_mlp",
        subnet_kwargs: Mapping[str, Any] | None = None,
        use_optimal_transport: bool = False,
        time_power_law_alpha: float = 1.0,
        integrate_kwargs: Mapping[str, Any] | None = None,
        drop_cond_prob: float = 0.0,
        guidance_scale: float = 0.0,
        exact_divergence_max_dim: int | None = None,
        hutchinson_seed: int = 0,
        dim: int = 0,
        cond_dim: int = 0,
        key: jax.Array | None = None,
        layout: tuple | None = None,
    ):
        subnet, sub = subnet_config("FlowMatching", subnet, subnet_kwargs)
        opts = integrate_options("FlowMatching", integrate_kwargs, DEFAULT_INTEGRATE, ODE_SOLVERS)
        check_guidance("FlowMatching", float(drop_cond_prob), float(guidance_scale))
        if time_power_law_alpha <= -1:
            raise ValueError(
                f"FlowMatching: time_power_law_alpha must exceed -1, got {time_power_law_alpha}"
            )
        self.config_json = encode_config(
            subnet=subnet,
            subnet_kwargs=sub,
            use_optimal_transport=bool(use_optimal_transport),
            time_power_law_alpha=float(time_power_law_alpha),
            integrate_kwargs=opts,
            exact_divergence_max_dim=(
                None if exact_divergence_max_dim is None else int(exact_divergence_max_dim)
            ),
            hutchinson_seed=int(hutchinson_seed),
            drop_cond_prob=float(drop_cond_prob),
            guidance_scale=float(guidance_scale),
        )
        self.drop_cond_prob = float(drop_cond_prob)
        self.guidance_scale = float(guidance_scale)
        self.integrate = tuple(sorted(opts.items()))
        check_choice("FlowMatching", "use_optimal_transport", use_optimal_transport, (True, False))
        self.use_ot = bool(use_optimal_transport)
        self.alpha = float(time_power_law_alpha)
        self.exact_max_dim = (
            None if exact_divergence_max_dim is None else int(exact_divergence_max_dim)
        )
        self.hutchinson_seed = int(hutchinson_seed)
        self.dim, self.cond_dim = int(dim), int(cond_dim)
        self.layout = check_layout(type(self).__name__, layout, self.dim, self.cond_dim)
        if self.dim == 0:
            self.field = None
            return
        self.field = guided_time_field(
            "FlowMatching",
            self.dim,
            self.cond_dim,
            self.drop_cond_prob,
            subnet,
            sub,
            key,
            self.layout,
        )

    @property
    def log_prob_caveat(self) -> str | None:
        """Set when ``log_prob`` is Hutchinson's estimate (asked for by
        ``exact_divergence_max_dim`` below ``dim``), not the exact density."""
        if self.exact_max_dim is not None and self.dim > self.exact_max_dim:
            return (
                f"FlowMatching(exact_divergence_max_dim={self.exact_max_dim}) estimates the "
                f"divergence of its {self.dim}-dimensional field with Hutchinson's trace "
                f"estimator, so log q is a random estimate (the log of an unbiased estimate "
                f"is biased); exact_divergence_max_dim=None (the default) gives the exact "
                f"density"
            )
        return None

    def _one_velocity(self, xi, ci, t):
        """v(x, t, c) for one example with its raw condition ``ci``, guided."""
        return guided(
            lambda c_in: self.field(jnp.concatenate([xi, c_in]), t, None),
            ci,
            self.drop_cond_prob,
            self.guidance_scale,
        )

    def velocity(self, x, t, cond, key=None):
        """Batched v(x, t, c): x (B, dim), scalar t, cond (B, cond_dim) -> (B, dim)."""
        return jax.vmap(lambda xi, ci: self._one_velocity(xi, ci, t))(x, cond)

    def loss(self, x, cond, key, train=True, step=None):
        k0, kt, kd, kot = jax.random.split(key, 4)
        # its own stream, so that a model without guidance trains exactly as before
        cond = training_conditions(jax.random.fold_in(key, 1), cond, self.drop_cond_prob)
        x0 = jax.random.normal(k0, x.shape)
        if self.use_ot:
            x0 = x0[sinkhorn_pairing(kot, x0, x)]
        u = jax.random.uniform(kt, (x.shape[0],))
        t = u ** (1.0 / (1.0 + self.alpha))
        xt = (1.0 - t[:, None]) * x0 + t[:, None] * x
        keys = split_dropout_key(kd, x.shape[0]) if train else None
        pred = jax.vmap(
            lambda xi, ti, ci, ki: self.field(jnp.concatenate([xi, ci]), ti, ki),
            in_axes=(0, 0, 0, 0 if train else None),
        )(xt, t, cond, keys)
        return jnp.mean(jnp.sum((pred - (x - x0)) ** 2, axis=-1))

    def sample(self, key, cond):
        self._require_built("sample")
        x0 = jax.random.normal(key, (cond.shape[0], self.dim))
        return solve_ode(lambda t, x: self.velocity(x, t, cond), x0, 0.0, 1.0, dict(self.integrate))

    def log_prob(self, x, cond, key: jax.Array | None = None):
        """The density by the instantaneous change of variables (see module docstring):
        exact unless ``log_prob_is_estimate``; then ``key`` (default: the saved
        ``hutchinson_seed``) seeds Hutchinson's probe vectors."""
        self._require_built("log_prob")
        probes = None
        if self.log_prob_is_estimate:
            probe = jax.random.key(self.hutchinson_seed) if key is None else key
            probes = jax.random.rademacher(probe, x.shape, dtype=x.dtype)

        return ode_log_prob(self._one_velocity, x, cond, 1.0, 0.0, dict(self.integrate), probes)
