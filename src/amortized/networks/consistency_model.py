"""ConsistencyModel: consistency training with a progressive discretization (Song et al.
2023, "Consistency Models"; with the improvements of Song & Dhariwal 2023, "Improved
Techniques for Training Consistency Models"; for posteriors: Schmitt et al. 2024).

Forward process (variance exploding, on standardized targets): ``x_t = x + t z``,
``z ~ N(0, I)``, ``t`` in ``[eps, T]`` (``T = max_time``). A consistency function maps any
point of a probability-flow trajectory to the trajectory's start,

    f(x_t, t, c) = c_skip(t) x_t + c_out(t) F(c_in(t) x_t, tau(t), c),
    c_skip = s^2 / ((t - eps)^2 + s^2),  c_out = s (t - eps) / sqrt(s^2 + t^2),
    c_in = 1 / sqrt(t^2 + s^2),          tau = log(t / eps) / log(T / eps) in [0, 1],

with ``s^2 = sigma2`` the data variance (1 for standardized targets), so ``f(x, eps) = x``
holds by construction and the network ``F`` (a time-conditioned MLP) sees inputs and times
of unit scale.

Training (no teacher model): at optimizer step ``k`` of ``K = total_steps`` the noise range
is cut into ``N(k) - 1`` intervals at ``t_i = karras(i / (N - 1))`` (``rho = 7``), with

    N(k) = min(s0 * 2^floor(k / K'), s1) + 1,   K' = floor(K / (log2(s1 / s0) + 1)),

so the discretization doubles from ``s0`` to ``s1`` intervals over training. An interval
``i`` is drawn with probability proportional to the mass that ``log t ~ N(-1.1, 2.0^2)``
puts on it; the loss is the pseudo-Huber distance between the network at the upper end
and the same network, without gradient, at the lower end, on the same noise ``z``:

    loss = 1 / (t_{i+1} - t_i) * (sqrt(|f(x + t_{i+1} z, t_{i+1}) - sg f(x + t_i z, t_i)|^2
           + c^2) - c),   c = 0.00054 sqrt(dim).

The step ``k`` comes from the training loop; training past ``total_steps`` is refused
before it starts (:meth:`ConsistencyModel.check_training_steps`), since the schedule was
fixed for ``total_steps``. The validation loss (``train=False``) is always evaluated at the
final discretization (``s1`` intervals), so that early stopping compares epochs on one
objective.

Sampling (multistep consistency sampling): ``x = f(T z, T)``, then for each later time
``t_n`` of a ``sampling_steps``-point Karras grid from ``T`` down, ``x = f(x + sqrt(t_n^2 -
eps^2) z_n, t_n)``; ``sampling_steps = 1`` is one network evaluation per draw.

A consistency model has no tractable density: ``log_prob`` raises, and the amortized
Bayesian workflow cannot importance-weight its draws (:attr:`log_prob_caveat`).

With ``conditional_standardization=True`` (the default) all of the above applies to the
residual ``r = (x - m(c)) / s(c)`` of a learned Gaussian fit of the posterior, and draws
are ``m(c) + s(c) r`` (:mod:`~amortized.networks.conditional_standardization`): the loss
then weighs errors relative to the posterior's width, not the prior's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_positive_int, strict
from . import conditional_standardization as cs
from .base import InferenceNetwork, encode_config
from .guidance import check_guidance, guided, guided_time_field, training_conditions
from .image_field import check_layout, subnet_config
from .mlp import split_dropout_key
from .noise_schedules import karras_noise

#: Song & Dhariwal (2023), section 3.5: the log-normal proposal of training noise levels
CT_P_MEAN, CT_P_STD = -1.1, 2.0


def no_density_caveat(owner: str) -> str:
    return (
        f"{owner} has no density: it maps noise to draws in one or a few network "
        f"evaluations, with no tractable change of variables, so log q(theta | x) is not "
        f"available; CouplingFlow, FlowMatching and DiffusionModel have one"
    )


def discretization_points(step: jax.Array, total_steps: int, s0: int, s1: int) -> jax.Array:
    """``N(k)``: the number of discretization points at optimizer step ``k`` (int32; see
    the module docstring)."""
    stage = max(1, math.floor(total_steps / (math.log2(s1 / s0) + 1.0)))
    # capped where s0 * 2^d reaches s1, so that the power cannot overflow int32
    doublings = jnp.minimum(step // stage, math.ceil(math.log2(s1 / s0)))
    return (jnp.minimum(s0 * 2**doublings, s1) + 1).astype(jnp.int32)


def ct_grid(points: jax.Array, size: int, eps: float, max_time: float) -> jax.Array:
    """The first ``size`` times of the Karras grid with ``points`` points on ``[eps,
    max_time]`` ``(size,)``; entries from ``points`` on repeat ``max_time``."""
    i = jnp.minimum(jnp.arange(size), points - 1)
    return karras_noise(i / (points - 1), eps, max_time, 7.0)


def interval_logits(times: jax.Array, points: jax.Array) -> jax.Array:
    """Log-probabilities ``(size - 1,)`` of drawing each interval ``[t_i, t_{i+1}]`` in
    training: the mass of ``log t ~ N(CT_P_MEAN, CT_P_STD^2)`` on it; ``-inf`` beyond the
    grid's ``points - 1`` intervals."""
    cdf = jax.scipy.special.ndtr((jnp.log(times) - CT_P_MEAN) / CT_P_STD)
    mass = cdf[1:] - cdf[:-1]
    valid = jnp.arange(times.shape[0] - 1) < points - 1
    return jnp.where(valid & (mass > 0), jnp.log(jnp.maximum(mass, 1e-30)), -jnp.inf)


def pseudo_huber(diff: jax.Array, c: float) -> jax.Array:
    """``sqrt(|d|^2 + c^2) - c`` per row of ``diff`` ``(B, dim)`` -> ``(B,)``."""
    return jnp.sqrt(jnp.sum(diff**2, axis=-1) + c**2) - c


def multistep_sample(
    consistency: Callable[[jax.Array, jax.Array], jax.Array],
    start: jax.Array,
    times: jax.Array,
    renoise: Callable[[jax.Array, jax.Array, jax.Array], jax.Array],
    key: jax.Array,
) -> jax.Array:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1): ``x =
    consistency(start, times[0])``, then for each later time ``t``: ``x = consistency(
    renoise(x, t, noise), t)`` with fresh standard normal ``noise``. ``start``: the pure-noise
    input ``(B, dim)``; ``times`` ``(steps,)``, decreasing."""
    x = consistency(start, times[0])
    if times.shape[0] == 1:
        return x

    def step(x, inputs):
        t, k = inputs
        noise = jax.random.normal(k, x.shape, x.dtype)
        return consistency(renoise(x, t, noise), t), None

    keys = jax.random.split(key, times.shape[0] - 1)
    x, _ = jax.lax.scan(step, x, (times[1:], keys))
    return x


class ConsistencyModel(InferenceNetwork):
    """Consistency training with a progressive discretization (see the module docstring).

    Parameters
    ----------
    total_steps : int
        Required: the number of optimizer steps training will take (epochs x batches per
        epoch, over all fits); the discretization schedule is laid out over it, and training
        beyond it raises. With early stopping, training may end sooner (the schedule then
        stops short of ``s1``).
    subnet : {"time_mlp", "mlp"}, default "time_mlp"
    subnet_kwargs : dict, optional
        :class:`~amortized.networks.TimeMLP` options (``widths`` default (256, 256, 256),
        ``activation``, ``dropout`` default 0.05, ``residual``, ``time_embedding_dim``).
    max_time : float, default 200.0
        The largest noise level ``T`` (in units of the standardized targets).
    sigma2 : float, default 1.0
        The data variance in ``c_skip`` and ``c_out`` (1: the standardized targets').
    eps : float, default 0.001
        The smallest noise level, where ``f`` is the identity.
    s0, s1 : int, default 10, 50
        Intervals of the discretization at the start and at the end of training.
    sampling_steps : int, default 10
        Network evaluations per draw (1: one-step sampling).
    drop_cond_prob : float, default 0.0
        Classifier-free guidance training (:mod:`~amortized.networks.guidance`).
    guidance_scale : float, default 0.0
        Guidance at sampling, applied to ``F``; needs ``drop_cond_prob > 0``. Guided draws
        are sharper than the posterior (images, not calibrated inference).
    conditional_standardization : bool, default True
        Model the residual of a learned Gaussian fit of the posterior
        (:mod:`~amortized.networks.conditional_standardization`), so that the loss weights
        errors relative to the posterior's width, not the prior's.

    Examples
    --------
    >>> net = ConsistencyModel(total_steps=100 * 250, s0=2, s1=200)
    >>> net.config["s1"]
    200
    """

    field: eqx.Module | None
    total_steps: int = eqx.field(static=True)
    max_time: float = eqx.field(static=True)
    sigma2: float = eqx.field(static=True)
    eps: float = eqx.field(static=True)
    s0: int = eqx.field(static=True)
    s1: int = eqx.field(static=True)
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
        total_steps: int,
        subnet: str = "time_mlp",
        subnet_kwargs: Mapping[str, Any] | None = None,
        max_time: float = 200.0,
        sigma2: float = 1.0,
        eps: float = 0.001,
        s0: int = 10,
        s1: int = 50,
        sampling_steps: int = 10,
        drop_cond_prob: float = 0.0,
        guidance_scale: float = 0.0,
        conditional_standardization: bool = True,
        dim: int = 0,
        cond_dim: int = 0,
        key: jax.Array | None = None,
        layout: tuple | None = None,
    ):
        owner = "ConsistencyModel"
        total_steps = check_positive_int(owner, "total_steps", total_steps)
        s0 = check_positive_int(owner, "s0", s0)
        s1 = check_positive_int(owner, "s1", s1)
        if s1 < s0:
            raise ValueError(f"{owner}: s1 (final intervals) must be >= s0, got s0={s0}, s1={s1}")
        sampling_steps = check_positive_int(owner, "sampling_steps", sampling_steps)
        if not 0.0 < float(eps) < float(max_time):
            raise ValueError(f"{owner}: 0 < eps < max_time is needed, got {eps=}, {max_time=}")
        if not float(sigma2) > 0.0:
            raise ValueError(f"{owner}: sigma2 must be positive, got {sigma2!r}")
        subnet, sub = subnet_config(owner, subnet, subnet_kwargs)
        check_guidance(owner, float(drop_cond_prob), float(guidance_scale))
        self.config_json = encode_config(
            total_steps=total_steps,
            subnet=subnet,
            subnet_kwargs=sub,
            max_time=float(max_time),
            sigma2=float(sigma2),
            eps=float(eps),
            s0=s0,
            s1=s1,
            sampling_steps=sampling_steps,
            drop_cond_prob=float(drop_cond_prob),
            guidance_scale=float(guidance_scale),
            conditional_standardization=cs.check_option(owner, conditional_standardization),
        )
        self.total_steps, self.s0, self.s1 = total_steps, s0, s1
        self.max_time, self.sigma2, self.eps = float(max_time), float(sigma2), float(eps)
        self.sampling_steps = sampling_steps
        self.drop_cond_prob = float(drop_cond_prob)
        self.guidance_scale = float(guidance_scale)
        self.dim, self.cond_dim = int(dim), int(cond_dim)
        self.layout = check_layout(type(self).__name__, layout, self.dim, self.cond_dim)
        self.standardizer = cs.build_head(
            conditional_standardization, self.dim, self.cond_dim, cs.head_key(key), self.layout
        )
        if self.dim == 0:
            self.field = None
            return
        self.field = guided_time_field(
            owner, self.dim, self.cond_dim, self.drop_cond_prob, subnet, sub, key, self.layout
        )

    @property
    def log_prob_caveat(self) -> str:
        return no_density_caveat("ConsistencyModel")

    def check_training_steps(self, last_step: int) -> None:
        if last_step > self.total_steps:
            raise ValueError(
                f"ConsistencyModel(total_steps={self.total_steps}): this training would run "
                f"to optimizer step {last_step}, past total_steps, for which the "
                f"discretization schedule was laid out (epochs x batches per epoch, over "
                f"all fits). Construct it with total_steps={last_step} (or train for fewer "
                f"epochs)"
            )

    # -- pieces ------------------------------------------------------------------------------
    def _tau(self, t):
        return jnp.log(t / self.eps) / math.log(self.max_time / self.eps)

    def consistency(self, x, t, cond_in, key=None, raw_cond=False):
        """``f(x_t, t, c)`` for one example ``x`` ``(dim,)`` at a scalar ``t``. ``cond_in``
        is the network's condition input (with the keep flag under guidance training);
        ``raw_cond=True``: a raw condition, guided at ``guidance_scale``."""
        s2 = self.sigma2
        c_skip = s2 / ((t - self.eps) ** 2 + s2)
        c_out = math.sqrt(s2) * (t - self.eps) / jnp.sqrt(s2 + t**2)
        u = x / jnp.sqrt(t**2 + s2)

        def out(c):
            return self.field(jnp.concatenate([u, c]), self._tau(t), key)

        f = (
            guided(out, cond_in, self.drop_cond_prob, self.guidance_scale)
            if raw_cond
            else out(cond_in)
        )
        return c_skip * x + c_out * f

    def sampling_times(self) -> jax.Array:
        """The ``sampling_steps`` times of multistep sampling, from ``max_time`` down."""
        u = jnp.linspace(1.0, 0.0, self.sampling_steps + 1)[:-1]
        return karras_noise(u, self.eps, self.max_time, 7.0)

    # -- the network's interface ---------------------------------------------------------------
    def loss(self, x, cond, key, train=True, step=None):
        if not train:
            # validation at the final discretization, so that epochs at different stages
            # of the schedule are compared on one objective
            step = self.total_steps - 1
        if step is None:
            raise ValueError(
                "ConsistencyModel.loss: needs the optimizer step (step=...), which the "
                "training loop passes; its discretization depends on it"
            )
        x, head_loss = cs.residual_for_training(self.standardizer, x, cond)
        ki, kz, kc, kd = jax.random.split(key, 4)
        n = x.shape[0]
        step = jnp.minimum(jnp.asarray(step), self.total_steps - 1)
        points = discretization_points(step, self.total_steps, self.s0, self.s1)
        times = ct_grid(points, self.s1 + 1, self.eps, self.max_time)
        i = jax.random.categorical(ki, interval_logits(times, points), shape=(n,))
        t_lo, t_hi = times[i], times[i + 1]
        z = jax.random.normal(kz, x.shape)
        cond_in = training_conditions(kc, cond, self.drop_cond_prob)
        keys = split_dropout_key(kd, n) if train else None

        def f(t):  # the same noise and dropout masks at both ends of the interval
            return jax.vmap(
                lambda xi, zi, ti, ci, ki: self.consistency(xi + ti * zi, ti, ci, ki),
                in_axes=(0, 0, 0, 0, 0 if train else None),
            )(x, z, t, cond_in, keys)

        teacher = jax.lax.stop_gradient(f(t_lo))
        distance = pseudo_huber(f(t_hi) - teacher, 0.00054 * math.sqrt(self.dim))
        return jnp.mean(distance / (t_hi - t_lo)) + head_loss

    def sample(self, key, cond):
        self._require_built("sample")
        kz, ks = jax.random.split(key)
        start = self.max_time * jax.random.normal(kz, (cond.shape[0], self.dim))

        def consistency(x, t):
            return jax.vmap(lambda xi, ci: self.consistency(xi, t, ci, raw_cond=True))(x, cond)

        def renoise(x, t, noise):
            return x + jnp.sqrt(t**2 - self.eps**2) * noise

        r = multistep_sample(consistency, start, self.sampling_times(), renoise, ks)
        return cs.from_residual(self.standardizer, r, cond)

    def log_prob(self, x, cond):
        raise NotImplementedError(self.log_prob_caveat)
