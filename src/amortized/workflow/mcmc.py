"""MCMC refinement for the amortized Bayesian workflow (BlackJAX).

``chees_hmc``: many short chains (Margossian et al. 2024). ``num_superchains`` starting
points (e.g. distinct amortized or PSIS-resampled draws) each start ``num_subchains`` chains;
ChEES adaptation tunes the step size and trajectory length jointly over all chains for
``num_warmup`` steps, then every chain takes ``num_draws`` steps. Convergence is judged by
nested R-hat over the superchains.

``nuts``: the fallback, ``num_chains`` NUTS chains with window adaptation from given starting
points; R-hat and ESS from ArviZ.

Both take a log density of one flat unconstrained vector ``(dim,)`` and work for one dataset;
vmap over datasets with the data as an argument of ``logdensity``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..diagnostics.nested_rhat import nested_rhat


@dataclass(frozen=True)
class McmcResult:
    """``draws (num_superchains, num_subchains, num_draws, dim)`` (NUTS: one subchain per
    chain), ``rhat (dim,)`` (nested R-hat for ChEES, split R-hat for NUTS), ``ess (dim,)``
    (bulk ESS; ChEES: over all chains) and ``acceptance`` (mean acceptance rate)."""

    draws: np.ndarray
    rhat: np.ndarray
    ess: np.ndarray
    acceptance: float


def _ess(draws: np.ndarray) -> np.ndarray:
    import arviz as az

    chains = draws.reshape(-1, draws.shape[2], draws.shape[3])  # (chains, draws, dim)
    return np.array([float(az.ess(chains[..., j], method="bulk")) for j in range(chains.shape[2])])


def _chees_run(
    logdensity, data, init, key, step_size, learning_rate, num_subchains, num_warmup, num_draws
):
    import blackjax
    import optax

    k, _ = init.shape
    chains = k * num_subchains
    positions = jnp.repeat(init, num_subchains, axis=0)  # chain c is in superchain c // M
    k_adapt, k_sample = jax.random.split(key)

    def density(u):
        return logdensity(u) if data is None else logdensity(u, data)

    adapt = blackjax.chees_adaptation(density, chains)
    (states, params), _ = adapt.run(
        k_adapt, positions, step_size, optax.adam(learning_rate), num_warmup
    )
    kernel = blackjax.dynamic_hmc(density, **params)

    def step(states, key):
        states, info = jax.vmap(kernel.step)(jax.random.split(key, chains), states)
        return states, (states.position, info.acceptance_rate)

    _, (draws, acc) = jax.lax.scan(step, states, jax.random.split(k_sample, num_draws))
    return draws, jnp.mean(acc)


_CHEES_STATIC = ("logdensity", "num_subchains", "num_warmup", "num_draws")
_chees_core = functools.partial(jax.jit, static_argnames=_CHEES_STATIC)(_chees_run)


@functools.partial(jax.jit, static_argnames=_CHEES_STATIC)
def _chees_many_core(
    logdensity, data, init, keys, step_size, learning_rate, num_subchains, num_warmup, num_draws
):
    def one(d, x0, k):
        return _chees_run(
            logdensity, d, x0, k, step_size, learning_rate, num_subchains, num_warmup, num_draws
        )

    return jax.vmap(one)(data, init, keys)


def _chees_result(draws: np.ndarray, k: int, m: int, num_draws: int, acc) -> McmcResult:
    """``draws (num_draws, chains, dim)`` to superchain-major ``(k, m, num_draws, dim)``."""
    draws = np.asarray(draws).transpose(1, 0, 2).reshape(k, m, num_draws, -1)
    return McmcResult(draws, nested_rhat(draws), _ess(draws), float(acc))


def chees_hmc(
    logdensity: Callable[..., jax.Array],
    initial_positions: jax.Array,
    num_subchains: int = 16,
    num_warmup: int = 200,
    num_draws: int = 20,
    step_size: float = 0.1,
    learning_rate: float = 0.025,
    seed: int = 0,
    data: Any = None,
) -> McmcResult:
    """ChEES-HMC with ``initial_positions (num_superchains, dim)`` as superchain starts.

    ``logdensity(u)``, or ``logdensity(u, data)`` when ``data`` (a pytree of arrays) is
    given: then one compilation serves every dataset of the same shapes (pass the same
    function object each time).

    >>> res = chees_hmc(lambda x: -0.5 * jnp.sum(x**2), jnp.zeros((4, 2)), num_subchains=8)
    >>> res.draws.shape
    (4, 8, 20, 2)
    """
    init = jnp.asarray(initial_positions, jnp.float32)
    if init.ndim != 2 or init.shape[0] < 2:
        raise ValueError(
            f"chees_hmc: initial_positions must be (num_superchains >= 2, dim), got {init.shape}"
        )
    k, dim = init.shape
    m = int(num_subchains)
    # BlackJAX broadcasts (chains, dim) against (dim,) internally: allow it here even when
    # the caller runs JAX with strict rank promotion
    with jax.numpy_rank_promotion("allow"):
        draws, acc = _chees_core(
            logdensity,
            data,
            init,
            jax.random.key(seed),
            step_size,
            learning_rate,
            m,
            int(num_warmup),
            int(num_draws),
        )
    return _chees_result(draws, k, m, int(num_draws), acc)


def _many_inputs(where: str, chains: str, initial_positions, seeds):
    """Checked ``(num_datasets, chains >= 2, dim)`` starting points and one PRNG key per
    dataset, for the ``*_many`` samplers."""
    init = jnp.asarray(initial_positions, jnp.float32)
    if init.ndim != 3 or init.shape[1] < 2:
        raise ValueError(
            f"{where}: initial_positions must be (num_datasets, {chains} >= 2, dim), "
            f"got {init.shape}"
        )
    seeds = np.asarray(seeds, np.uint32).reshape(-1)
    if len(seeds) != init.shape[0]:
        raise ValueError(f"{where}: {init.shape[0]} datasets but {len(seeds)} seeds")
    return init, jax.vmap(jax.random.key)(jnp.asarray(seeds))


def chees_hmc_many(
    logdensity: Callable[..., jax.Array],
    initial_positions: jax.Array,
    data: Any,
    seeds: Any,
    num_subchains: int = 16,
    num_warmup: int = 200,
    num_draws: int = 20,
    step_size: float = 0.1,
    learning_rate: float = 0.025,
) -> list[McmcResult]:
    """:func:`chees_hmc` for many datasets at once, vmapped: ``initial_positions
    (num_datasets, num_superchains, dim)``, ``data`` a pytree of arrays leading with
    ``num_datasets``, one seed per dataset. Each dataset adapts its own step size and
    trajectory length. One compiled call serves batches of the same size and shapes, and
    the batch's chains share every array operation; but every dataset of a batch waits for
    the batch's longest trajectories, so on a CPU it ran slower than one dataset after
    another; it is meant for accelerators.

    >>> res = chees_hmc_many(lambda x, mu: -0.5 * jnp.sum((x - mu) ** 2),
    ...                      jnp.zeros((3, 4, 2)), jnp.arange(3.0)[:, None], seeds=[0, 1, 2])
    >>> len(res), res[0].draws.shape
    (3, (4, 16, 20, 2))
    """
    init, keys = _many_inputs("chees_hmc_many", "num_superchains", initial_positions, seeds)
    n, k, _ = init.shape
    m = int(num_subchains)
    with jax.numpy_rank_promotion("allow"):  # as in chees_hmc
        draws, acc = _chees_many_core(
            logdensity,
            data,
            init,
            keys,
            step_size,
            learning_rate,
            m,
            int(num_warmup),
            int(num_draws),
        )
    draws, acc = np.asarray(draws), np.asarray(acc)
    return [_chees_result(draws[i], k, m, int(num_draws), acc[i]) for i in range(n)]


def _nuts_run(logdensity, data, init, key, num_warmup, num_draws):
    import blackjax

    def density(u):
        return logdensity(u) if data is None else logdensity(u, data)

    def one_chain(key, x0):
        k_warm, k_draw = jax.random.split(key)
        warm = blackjax.window_adaptation(blackjax.nuts, density)
        (state, params), _ = warm.run(k_warm, x0, num_steps=num_warmup)
        kernel = blackjax.nuts(density, **params)

        def step(state, key):
            state, info = kernel.step(key, state)
            return state, (state.position, info.acceptance_rate)

        _, (xs, acc) = jax.lax.scan(step, state, jax.random.split(k_draw, num_draws))
        return xs, acc

    xs, acc = jax.vmap(one_chain)(jax.random.split(key, init.shape[0]), init)
    return xs, jnp.mean(acc)


_NUTS_STATIC = ("logdensity", "num_warmup", "num_draws")
_nuts_core = functools.partial(jax.jit, static_argnames=_NUTS_STATIC)(_nuts_run)


@functools.partial(jax.jit, static_argnames=_NUTS_STATIC)
def _nuts_many_core(logdensity, data, init, keys, num_warmup, num_draws):
    def one(d, x0, k):
        return _nuts_run(logdensity, d, x0, k, num_warmup, num_draws)

    return jax.vmap(one)(data, init, keys)


def _nuts_result(xs: np.ndarray, acc) -> McmcResult:
    import arviz as az

    draws = np.asarray(xs)[:, None]  # (chains, 1, draws, dim)
    chains = draws[:, 0]
    rhat = np.array([float(az.rhat(chains[..., j])) for j in range(chains.shape[-1])])
    return McmcResult(draws, rhat, _ess(draws), float(acc))


def nuts(
    logdensity: Callable[..., jax.Array],
    initial_positions: jax.Array,
    num_warmup: int = 500,
    num_draws: int = 500,
    seed: int = 0,
    data: Any = None,
) -> McmcResult:
    """NUTS chains from ``initial_positions (num_chains, dim)``, each with its own window
    adaptation; ``rhat`` is ArviZ's rank-normalized split R-hat. ``logdensity`` and ``data``
    as in :func:`chees_hmc`."""
    init = jnp.asarray(initial_positions, jnp.float32)
    if init.ndim != 2 or init.shape[0] < 2:
        raise ValueError(
            f"nuts: initial_positions must be (num_chains >= 2, dim), got {init.shape}"
        )
    with jax.numpy_rank_promotion("allow"):  # as in chees_hmc
        xs, acc = _nuts_core(
            logdensity, data, init, jax.random.key(seed), int(num_warmup), int(num_draws)
        )
    return _nuts_result(xs, acc)


def nuts_many(
    logdensity: Callable[..., jax.Array],
    initial_positions: jax.Array,
    data: Any,
    seeds: Any,
    num_warmup: int = 500,
    num_draws: int = 500,
) -> list[McmcResult]:
    """:func:`nuts` for many datasets at once, vmapped (as :func:`chees_hmc_many`):
    ``initial_positions (num_datasets, num_chains, dim)``, ``data`` leading with
    ``num_datasets``, one seed per dataset."""
    init, keys = _many_inputs("nuts_many", "num_chains", initial_positions, seeds)
    with jax.numpy_rank_promotion("allow"):  # as in chees_hmc
        xs, acc = _nuts_many_core(
            logdensity,
            data,
            init,
            keys,
            int(num_warmup),
            int(num_draws),
        )
    xs, acc = np.asarray(xs), np.asarray(acc)
    return [_nuts_result(xs[i], acc[i]) for i in range(init.shape[0])]
