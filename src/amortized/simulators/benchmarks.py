"""Built-in benchmark models: our NumPy versions of the sbibm tasks.

Each task is a batched simulator returning ``{"theta": (n, dim_theta), "x": (n, dim_x)}``,
written from the task definitions of Lueckmann et al. (2021), "Benchmarking simulation-based
inference". Their reference posteriors (sbibm's files, not shipped with the package) are
found by :func:`sbibm_root`: an explicit path, or the ``AMORTIZED_SBIBM`` environment
variable.

>>> sim = two_moons()
>>> sim.sample(5, seed=0)["x"].shape
(5, 2)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from .simulator import Simulator, make_simulator

SBIBM_ENV = "AMORTIZED_SBIBM"
SBIBM_HOW = (
    f"pass the folder of sbibm reference posteriors (one subfolder per task, e.g. "
    f"two_moons/num_observation_1/) explicitly, or set {SBIBM_ENV} to it"
)


def sbibm_root(path: str | os.PathLike | None = None) -> Path | None:
    """The folder of sbibm reference posteriors: ``path`` when given, else the
    ``AMORTIZED_SBIBM`` environment variable, else None (no walking up from the working
    directory: a result must not depend on where a command happens to run). A path that was
    given but does not exist raises and names itself."""
    given = path if path is not None else os.environ.get(SBIBM_ENV) or None
    if given is None:
        return None
    root = Path(given).expanduser()
    if not root.is_dir():
        source = "the path given" if path is not None else f"{SBIBM_ENV}"
        raise FileNotFoundError(
            f"sbibm reference folder {str(root)!r} ({source}) does not exist; {SBIBM_HOW}"
        )
    return root


def _batched(prior: Callable, likelihood: Callable) -> Simulator:
    return make_simulator([prior, likelihood], is_batched=True)


def two_moons() -> Simulator:
    """theta ~ U(-1, 1)^2; x = p(a, r) + (-|z0|, z1), z = R(-pi/4) theta (sbibm two_moons)."""

    def prior(batch_size, rng):
        return {"theta": rng.uniform(-1.0, 1.0, size=(batch_size, 2))}

    def likelihood(theta, rng):
        n = theta.shape[0]
        a = rng.uniform(-np.pi / 2, np.pi / 2, size=n)
        r = rng.normal(0.1, 0.01, size=n)
        p = np.stack([np.cos(a) * r + 0.25, np.sin(a) * r], axis=-1)
        c = s = np.sqrt(0.5)  # cos(-pi/4) and -sin(-pi/4)
        z0 = c * theta[:, 0] + s * theta[:, 1]
        z1 = -s * theta[:, 0] + c * theta[:, 1]
        return {"x": p + np.stack([-np.abs(z0), z1], axis=-1)}

    return _batched(prior, likelihood)


def gaussian_linear(dim: int = 10, prior_var: float = 0.1, noise_var: float = 0.1) -> Simulator:
    """theta ~ N(0, 0.1 I); x ~ N(theta, 0.1 I) (sbibm gaussian_linear, variances 0.1)."""

    def prior(batch_size, rng):
        return {"theta": rng.normal(0.0, np.sqrt(prior_var), size=(batch_size, dim))}

    def likelihood(theta, rng):
        return {"x": theta + rng.normal(0.0, np.sqrt(noise_var), size=theta.shape)}

    return _batched(prior, likelihood)


def gaussian_linear_uniform(dim: int = 10, noise_var: float = 0.1) -> Simulator:
    """theta ~ U(-1, 1)^10; x ~ N(theta, 0.1 I) (sbibm gaussian_linear_uniform)."""

    def prior(batch_size, rng):
        return {"theta": rng.uniform(-1.0, 1.0, size=(batch_size, dim))}

    def likelihood(theta, rng):
        return {"x": theta + rng.normal(0.0, np.sqrt(noise_var), size=theta.shape)}

    return _batched(prior, likelihood)


def slcp(as_set: bool = False) -> Simulator:
    """theta ~ U(-3, 3)^5; 4 draws of N(m, S), m = theta[:2], s_i = theta[2+i]^2,
    rho = tanh(theta[4]); x is the 4 draws flattened to 8 numbers (sbibm slcp), or with
    ``as_set`` the exchangeable draws themselves, ``(4, 2)``, for a summary network."""

    def prior(batch_size, rng):
        return {"theta": rng.uniform(-3.0, 3.0, size=(batch_size, 5))}

    def likelihood(theta, rng):
        n = theta.shape[0]
        s1, s2 = theta[:, 2] ** 2, theta[:, 3] ** 2
        rho = np.tanh(theta[:, 4])
        cov = np.empty((n, 2, 2))
        cov[:, 0, 0] = s1**2 + 1e-6
        cov[:, 1, 1] = s2**2 + 1e-6
        cov[:, 0, 1] = cov[:, 1, 0] = rho * s1 * s2
        chol = np.linalg.cholesky(cov)
        eps = rng.normal(size=(n, 4, 2))
        draws = theta[:, None, :2] + np.einsum("nij,nkj->nki", chol, eps)
        return {"x": draws if as_set else draws.reshape(n, 8)}

    return _batched(prior, likelihood)


def gaussian_mixture() -> Simulator:
    """theta ~ U(-10, 10)^2; x ~ 0.5 N(theta, I) + 0.5 N(theta, 0.01 I) (sbibm)."""

    def prior(batch_size, rng):
        return {"theta": rng.uniform(-10.0, 10.0, size=(batch_size, 2))}

    def likelihood(theta, rng):
        scale = np.where(rng.uniform(size=(theta.shape[0], 1)) < 0.5, 1.0, 0.1)
        return {"x": theta + scale * rng.normal(size=theta.shape)}

    return _batched(prior, likelihood)


def bernoulli_glm_design() -> np.ndarray:
    """The fixed (100, 10) design: an intercept column and 9 lags of a white-noise stimulus
    drawn with ``RandomState(42)``, as in sbibm."""
    stimulus = np.random.RandomState(42).randn(100).astype(np.float32).astype(np.float64)
    design = np.zeros((100, 10))
    design[:, 0] = 1.0
    for j in range(9):
        design[j:, j + 1] = stimulus[: 100 - j]
    return design


def bernoulli_glm_prior_precision() -> np.ndarray:
    """Prior precision: 0.5 on the offset, F^T F on the filter (smoothness via second
    differences), F = D D + diag(sqrt(i / 9)), as in sbibm."""
    m = 9
    d = np.eye(m) - np.eye(m, k=-1)
    f = d @ d + np.diag(np.sqrt(np.arange(m) / m))
    prec = np.zeros((10, 10))
    prec[0, 0] = 0.5
    prec[1:, 1:] = f.T @ f
    return prec


def bernoulli_glm(raw: bool = False, with_design: bool = False) -> Simulator:
    """theta ~ N(0, B^-1) (10 parameters); y_t ~ Bernoulli(sigmoid(V theta)) for 100 steps;
    x = V^T y (spike count and 9 stimulus correlations), or y itself when ``raw``, or with
    ``with_design`` the 100 pairs (y_t, V_t) as a ``(100, 11)`` set (the observations are
    conditionally independent given theta and their design rows)."""
    design = bernoulli_glm_design()
    cov_chol = np.linalg.cholesky(np.linalg.inv(bernoulli_glm_prior_precision()))

    def prior(batch_size, rng):
        return {"theta": rng.normal(size=(batch_size, 10)) @ cov_chol.T}

    def likelihood(theta, rng):
        p = 1.0 / (1.0 + np.exp(-(theta @ design.T)))
        y = (rng.uniform(size=p.shape) < p).astype(np.float64)
        if with_design:
            return {
                "x": np.concatenate([y[..., None], np.broadcast_to(design, y.shape + (10,))], -1)
            }
        return {"x": y if raw else y @ design}

    return _batched(prior, likelihood)


def _ode_solutions(name: str, field: Callable, y0, ts, theta: np.ndarray) -> np.ndarray:
    """The states ``(n, len(ts), len(y0))`` of ``dy/dt = field(t, y, theta_i)`` from ``y0`` at
    t = 0, one solve per row of ``theta``, with Diffrax's Tsit5 and an adaptive step (as
    sbibm's DifferentialEquations.jl solves). A solve that fails (step budget spent) raises
    and names the task and parameters instead of returning NaN data."""
    solve = _compiled_solver(field, tuple(map(float, y0)), tuple(map(float, ts)))
    ys, ok = solve(np.asarray(theta, np.float32))
    ys, ok = np.asarray(ys, np.float64), np.asarray(ok)
    if not ok.all():
        bad = np.asarray(theta)[~ok][:3]
        raise RuntimeError(
            f"{name}: the ODE solve failed for {int((~ok).sum())} of {len(ok)} parameter "
            f"draws (first: {bad.tolist()})"
        )
    return ys


@functools.cache
def _compiled_solver(field: Callable, y0: tuple, ts: tuple) -> Callable:
    """One compiled, vmapped solve per field, initial state and save times (all part of the
    key: a task built with another population must not reuse a solve of the first)."""

    def one(th):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, args: field(t, y, args)),
            diffrax.Tsit5(),
            t0=0.0,
            t1=float(ts[-1]),
            dt0=None,
            y0=jnp.asarray(y0, jnp.float32),
            args=th,
            saveat=diffrax.SaveAt(ts=jnp.asarray(ts, jnp.float32)),
            stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-9),
            max_steps=16_384,
            throw=False,
        )
        return sol.ys, sol.result == diffrax.RESULTS.successful

    return jax.jit(jax.vmap(one))


def _sir_field(t, y, th):
    s, i = y[0], y[1]  # fractions of the population
    beta, gamma = th[0], th[1]
    infections = beta * s * i
    return jnp.stack([-infections, infections - gamma * i])


def _lv_field(t, y, th):
    x, z = y[0], y[1]
    alpha, beta, gamma, delta = th[0], th[1], th[2], th[3]
    return jnp.stack([alpha * x - beta * x * z, -gamma * z + delta * x * z])


def sir(population: float = 1e6, total_count: int = 1000) -> Simulator:
    """SIR epidemic (sbibm ``sir``): beta ~ LogNormal(log 0.4, 0.5), gamma ~ LogNormal(log
    0.125, 0.2); S' = -beta S I / N, I' = beta S I / N - gamma I from (N - 1, 1, 0), N = 10^6;
    x: ``total_count`` = 1000 people tested on days 0, 17, ..., 153 (10 days), the infected
    among them Binomial(1000, I / N). Solved in population fractions (same ODE, scaled)."""
    days = np.arange(0, 161, 17, dtype=np.float64)

    def prior(batch_size, rng):
        loc, scale = np.log([0.4, 0.125]), np.array([0.5, 0.2])
        return {"theta": np.exp(loc + scale * rng.normal(size=(batch_size, 2)))}

    def likelihood(theta, rng):
        y0 = (1.0 - 1.0 / population, 1.0 / population)
        infected = _ode_solutions("sir", _sir_field, y0, days, theta)[..., 1]
        return {"x": rng.binomial(total_count, np.clip(infected, 0.0, 1.0)).astype(float)}

    return _batched(prior, likelihood)


def lotka_volterra() -> Simulator:
    """Predator-prey model (sbibm ``lotka_volterra``): (alpha, beta, gamma, delta) ~
    LogNormal((-0.125, -3, -0.125, -3), 0.5); x' = alpha x - beta x y, y' = -gamma y + delta
    x y from (30, 1); x: both populations at t = 0, 2.1, ..., 18.9 (10 times; prey first),
    each LogNormal(log(clip(u, 1e-10, 10^4)), 0.1)."""
    times = np.arange(0, 201, 21) * 0.1

    def prior(batch_size, rng):
        loc = np.array([-0.125, -3.0, -0.125, -3.0])
        return {"theta": np.exp(loc + 0.5 * rng.normal(size=(batch_size, 4)))}

    def likelihood(theta, rng):
        u = _ode_solutions("lotka_volterra", _lv_field, (30.0, 1.0), times, theta)
        u = np.concatenate([u[..., 0], u[..., 1]], axis=1)  # (n, 20): prey, then predators
        log_u = np.log(np.clip(u, 1e-10, 1e4))
        return {"x": np.exp(log_u + 0.1 * rng.normal(size=u.shape))}

    return _batched(prior, likelihood)


# the sbibm tasks with reference posteriors in shared/benchmarks/sbibm, in benchmark order
SBIBM_TASKS = (
    "two_moons",
    "gaussian_linear",
    "gaussian_linear_uniform",
    "slcp",
    "gaussian_mixture",
    "bernoulli_glm",
    "sir",
    "lotka_volterra",
)

TASKS: dict[str, Callable[[], Simulator]] = {
    "two_moons": two_moons,
    "gaussian_linear": gaussian_linear,
    "gaussian_linear_uniform": gaussian_linear_uniform,
    "slcp": slcp,
    "slcp_set": lambda: slcp(as_set=True),
    "gaussian_mixture": gaussian_mixture,
    "bernoulli_glm": bernoulli_glm,
    "bernoulli_glm_raw": lambda: bernoulli_glm(raw=True),
    "bernoulli_glm_raw_set": lambda: bernoulli_glm(raw=True, with_design=True),
    "sir": sir,
    "lotka_volterra": lotka_volterra,
}


#: Supports of the priors of ``theta`` (lower, upper): the boxes of the uniform priors, and
#: the positive half-line of the log-normal ones (upper None); a modeller declares them with
#: ``Adapter.constrain`` so that no posterior mass falls outside the prior's support.
PRIOR_BOUNDS: dict[str, tuple[float, float | None]] = {
    "two_moons": (-1.0, 1.0),
    "gaussian_linear_uniform": (-1.0, 1.0),
    "slcp": (-3.0, 3.0),
    "slcp_set": (-3.0, 3.0),
    "gaussian_mixture": (-10.0, 10.0),
    "sir": (0.0, None),
    "lotka_volterra": (0.0, None),
}


def get_task(name: str) -> Simulator:
    """The built-in simulator ``name``; one of :data:`TASKS`."""
    if name not in TASKS:
        raise KeyError(f"unknown benchmark task {name!r}; available: {sorted(TASKS)}")
    return TASKS[name]()
