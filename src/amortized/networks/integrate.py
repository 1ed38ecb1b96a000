"""Integration of the continuous-time inference networks (flow matching, diffusion), through
Diffrax's solvers.

- :func:`integrate_options` validates a network's ``integrate_kwargs`` against its defaults.
- :func:`solve_ode` integrates ``dy/dt = field(t, y)`` (a pytree ``y``) with fixed steps or
  an adaptive PID controller.
- :func:`solve_sde` integrates ``dy = drift(t, y) dt + g(t) dW`` with diagonal, additive
  noise (the reverse-time SDE of a diffusion model) with fixed steps.
- :func:`ode_log_prob` is the instantaneous change of variables along an ODE that maps base
  draws (``N(0, I)`` at ``t_base``) to data (at ``t_data``):
  ``log q(x) = log N(z(t_base)) + int_{t_data}^{t_base} div f(z_t, t) dt``, integrated
  together with ``z`` from the data end. The divergence is the exact trace of the Jacobian
  (``dim`` forward-mode products per evaluation), or Hutchinson's estimate
  ``e^T (df/dz) e`` when probe vectors ``e`` are given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import lineax

from .._validation import check_choice, strict_kwargs
from .distributions import base_log_prob

ODE_SOLVERS = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "ralston": diffrax.Ralston,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "bosh3": diffrax.Bosh3,
}
# additive-noise SDE solvers: Euler-Maruyama, and the stochastic Runge-Kutta methods made
# for additive noise (SEA, ShARK), which need the Brownian path's space-time increments
SDE_SOLVERS = {"euler_maruyama": diffrax.Euler, "sea": diffrax.SEA, "shark": diffrax.ShARK}


def integrate_options(
    owner: str,
    kwargs: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
    methods: Mapping[str, Any],
) -> dict[str, Any]:
    """``defaults`` updated by ``kwargs`` (only keys of ``defaults``), with ``method`` one of
    ``methods`` and ``steps`` a positive int or ``"adaptive"`` (ODE methods only)."""
    where = f"{owner}(integrate_kwargs)"
    opts = dict(defaults) | strict_kwargs(where, kwargs, tuple(defaults))
    check_choice(where, "method", opts["method"], sorted(methods))
    steps = opts["steps"]
    if steps != "adaptive" and (
        isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0
    ):
        raise ValueError(f"{where}: steps must be a positive int or 'adaptive', got {steps!r}")
    if steps == "adaptive" and opts["method"] in SDE_SOLVERS:
        raise ValueError(
            f"{where}: steps='adaptive' applies to the ODE methods "
            f"{sorted(ODE_SOLVERS)}; the SDE method {opts['method']!r} takes a number of steps"
        )
    return opts


def solve_ode(field: Callable, y0: Any, t0: float, t1: float, opts: Mapping[str, Any]) -> Any:
    """Integrate ``dy/dt = field(t, y)`` from ``t0`` to ``t1`` (either direction); fixed
    ``opts["steps"]`` or ``"adaptive"`` with ``rtol``/``atol``. Returns ``y(t1)``."""
    solver = ODE_SOLVERS[opts["method"]]()
    if opts["steps"] == "adaptive":
        controller = diffrax.PIDController(rtol=opts["rtol"], atol=opts["atol"])
        dt0 = None
    else:
        controller = diffrax.ConstantStepSize()
        dt0 = (t1 - t0) / opts["steps"]
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: field(t, y)),
        solver,
        t0=t0,
        t1=t1,
        dt0=dt0,
        y0=y0,
        stepsize_controller=controller,
        max_steps=opts["max_steps"],
        saveat=diffrax.SaveAt(t1=True),
    )
    return jax.tree_util.tree_map(lambda a: a[0], sol.ys)


def solve_sde(
    drift: Callable,
    diffusion: Callable,
    y0: jax.Array,
    key: jax.Array,
    opts: Mapping[str, Any],
) -> jax.Array:
    """Integrate ``dy = drift(s, y) ds + diffusion(s) dW_s`` from s = 0 to 1 with
    ``opts["steps"]`` fixed steps of ``opts["method"]`` (one of :data:`SDE_SOLVERS`).

    The noise is diagonal and additive (``diffusion(s)`` is a scalar), so every listed
    method converges in the strong sense. ``y0`` ``(B, dim)``; returns ``y(1)``."""
    shape = y0.shape
    n = y0.size
    method = opts["method"]
    levy = diffrax.SpaceTimeLevyArea if method in ("sea", "shark") else None
    path = diffrax.VirtualBrownianTree(
        0.0,
        1.0,
        tol=0.5 / opts["steps"],
        shape=jax.ShapeDtypeStruct((n,), y0.dtype),
        key=key,
        **({"levy_area": levy} if levy is not None else {}),
    )
    terms = diffrax.MultiTerm(
        diffrax.ODETerm(lambda s, y, args: drift(s, y.reshape(shape)).reshape(n)),
        diffrax.ControlTerm(
            lambda s, y, args: lineax.DiagonalLinearOperator(diffusion(s) * jnp.ones_like(y)),
            path,
        ),
    )
    sol = diffrax.diffeqsolve(
        terms,
        SDE_SOLVERS[method](),
        t0=0.0,
        t1=1.0,
        dt0=1.0 / opts["steps"],
        y0=y0.reshape(n),
        stepsize_controller=diffrax.ConstantStepSize(),
        max_steps=opts["steps"] + 1,
        saveat=diffrax.SaveAt(t1=True),
    )
    return sol.ys[0].reshape(shape)


def ode_log_prob(
    one_field: Callable,
    x: jax.Array,
    cond: jax.Array,
    t_data: float,
    t_base: float,
    opts: Mapping[str, Any],
    probes: jax.Array | None = None,
) -> jax.Array:
    """``log q(x)`` ``(B,)`` of the ODE ``dz/dt = one_field(z_i, c_i, t)`` (one example:
    ``(dim,), (cond_dim,), scalar -> (dim,)``) whose base ``N(0, I)`` sits at ``t_base``,
    for ``x`` ``(B, dim)`` at ``t_data``; exact divergence unless ``probes`` ``(B, dim)``
    (Hutchinson) are given."""

    def div_one(zi, ci, t, ei):
        f = lambda z: one_field(z, ci, t)  # noqa: E731
        if ei is not None:
            _, jvp = jax.jvp(f, (zi,), (ei,))
            return jnp.sum(jvp * ei)
        return jnp.trace(jax.jacfwd(f)(zi))

    def field(t, state):
        zs, _ = state
        v = jax.vmap(lambda zi, ci: one_field(zi, ci, t))(zs, cond)
        if probes is None:
            div = jax.vmap(lambda zi, ci: div_one(zi, ci, t, None))(zs, cond)
        else:
            div = jax.vmap(lambda zi, ci, ei: div_one(zi, ci, t, ei))(zs, cond, probes)
        # d log p(z_t) / dt = -div f, so log p(x) = log p(z_base) + int_{t_data}^{t_base}
        # div f dt in either direction of time: delta integrates div f from the data end
        return v, div

    z_base, delta = solve_ode(field, (x, jnp.zeros(x.shape[0])), t_data, t_base, opts)
    return base_log_prob("normal", z_base, 0.0) + delta
