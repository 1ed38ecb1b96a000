"""Prior elicitation from statements about data: fit a parametric prior's hyperparameters so
that its prior predictive matches what an expert says plausible data look like.

An expert rarely thinks in distributions of parameters but can say "the group mean lies
between 2 and 5 with 90% probability" or "the spread within a group is below 3 in 95% of
groups". Each such statement fixes quantiles of a *statistic of simulated data*:
``Quantiles("group mean", {0.05: 2.0, 0.95: 5.0})``. The model is a NumPyro model whose
hyperparameters are arguments (``def model(m0, s0, t, y=None): ...``); for hyperparameters
``eta``, its prior predictive gives the statistic's quantiles ``Q_eta(p)``, and

    eta* = argmin sum_statements sum_p ((Q_eta(p) - v_p) / scale)^2,

``scale`` the range of the values stated for that statistic (or, with a single value, its
magnitude, at least 1), so that statements on different scales weigh alike. The quantiles
are estimated from ``num_simulations`` prior predictive simulations drawn with
*reparameterized* samplers (the draws are differentiable functions of the hyperparameters:
NumPyro's Normal, HalfNormal, LogNormal, Gamma, Beta, ... are) and *common random numbers*
(the same noise at every step, so the objective is a smooth deterministic
function), and minimized with Adam on the unconstrained hyperparameters (``positive`` ones
through their log).

Contradictions: stated quantiles of one statistic that decrease with the probability raise
before fitting, naming the statements; after fitting, any stated quantile missed by more
than ``tolerance`` (in units of its scale) raises :class:`ElicitationError` naming the
statements that cannot be met together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_key


class ElicitationError(ValueError):
    """The statements cannot be met together by the model's prior."""


@dataclass(frozen=True)
class Quantiles:
    """A statement: the statistic named ``statistic`` has these quantiles
    ``{probability: value}`` under the prior predictive, e.g. ``Quantiles("group mean",
    {0.05: 2.0, 0.95: 5.0})`` for "between 2 and 5 with 90% probability"."""

    statistic: str
    quantiles: Mapping[float, float]
    label: str = ""

    def __post_init__(self):
        if not isinstance(self.quantiles, Mapping) or not self.quantiles:
            raise TypeError(
                f"Quantiles({self.statistic!r}): quantiles must be a non-empty dict "
                f"{{probability: value}}, got {self.quantiles!r}"
            )
        for p, v in self.quantiles.items():
            if not 0 < float(p) < 1 or not np.isfinite(float(v)):
                raise ValueError(
                    f"Quantiles({self.statistic!r}): probabilities must lie in (0, 1) and values "
                    f"be finite, got {p!r}: {v!r}"
                )

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        qs = ", ".join(f"q{float(p):g}={float(v):g}" for p, v in sorted(self.quantiles.items()))
        return f"{self.statistic}: {qs}"


@dataclass(frozen=True)
class ElicitedPrior:
    """``hyperparameters`` (fitted), ``table`` rows ``(statement, statistic, probability,
    stated, achieved, miss)`` with ``miss`` in units of the statistic's scale, ``loss``
    (the lowest reached; its hyperparameters are kept), the ``history`` of losses, and
    ``simulations`` ``{statistic: (S,)}`` of the fitted prior predictive (the figure)."""

    hyperparameters: dict[str, float]
    rows: list[tuple]
    loss: float
    history: list[float]
    simulations: dict[str, np.ndarray] = field(repr=False)
    statements: tuple[Quantiles, ...] = field(repr=False)
    fixed: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_model(self, model: Callable, observed: str | Sequence[str]):
        """The elicited prior's model: ``bf.NumPyroModel(model, observed, model_kwargs=``
        the fitted hyperparameters and the fixed arguments``)``, ready to simulate and
        train on."""
        from .numpyro_model import NumPyroModel

        return NumPyroModel(
            model, observed=observed, model_kwargs={**self.fixed, **self.hyperparameters}
        )

    def table(self):
        import pandas as pd

        return pd.DataFrame(
            self.rows,
            columns=["statement", "statistic", "probability", "stated", "achieved", "miss"],
        )

    def figure(self):
        """One panel per statistic: the fitted prior predictive's histogram, the stated
        quantiles (dashed) and the achieved ones (solid)."""
        from ..diagnostics.plots._layout import panels

        names = list(self.simulations)
        fig, axes = panels(len(names), max_cols=3, title="Elicited prior: prior predictive")
        for ax, name in zip(axes, names, strict=True):
            v = self.simulations[name]
            lo, hi = np.quantile(v, [0.005, 0.995])
            ax.hist(np.clip(v, lo, hi), bins=50, density=True, color="C0", alpha=0.6)
            for row in self.rows:
                if row[1] == name:
                    ax.axvline(row[3], color="C3", ls="--", lw=1)
                    ax.axvline(row[4], color="C2", lw=1)
            ax.set_xlabel(name)
        axes[0].plot([], [], color="C3", ls="--", label="stated quantile")
        axes[0].plot([], [], color="C2", label="achieved")
        axes[0].legend(frameon=False, fontsize="small")
        return fig


def _check_order(statements: Sequence[Quantiles]) -> None:
    """Stated quantiles of one statistic must not decrease with the probability."""
    by_stat: dict[str, list[tuple[float, float, str]]] = {}
    for st in statements:
        for p, v in st.quantiles.items():
            by_stat.setdefault(st.statistic, []).append((float(p), float(v), st.name))
    for stat, items in by_stat.items():
        items.sort()
        for (p1, v1, n1), (p2, v2, n2) in zip(items, items[1:], strict=False):
            if p2 > p1 and v2 < v1:
                raise ElicitationError(
                    f"elicit: statements cannot be met together: {n1!r} puts the "
                    f"{p1:g}-quantile of {stat!r} at {v1:g}, {n2!r} its {p2:g}-quantile at "
                    f"{v2:g}, below it (a higher quantile is never lower)"
                )
            if p2 == p1 and v2 != v1:
                raise ElicitationError(
                    f"elicit: statements cannot be met together: {n1!r} and {n2!r} give the "
                    f"{p1:g}-quantile of {stat!r} two values ({v1:g}, {v2:g})"
                )


def elicit(
    model: Callable,
    hyperparameters: Mapping[str, float],
    statistics: Mapping[str, Callable],
    statements: Sequence[Quantiles],
    *,
    positive: Sequence[str] = (),
    num_simulations: int = 4000,
    steps: int = 600,
    learning_rate: float = 0.05,
    tolerance: float = 0.05,
    seed: int | None = 0,
    model_kwargs: Mapping[str, Any] | None = None,
) -> ElicitedPrior:
    """Fit ``hyperparameters`` (argument name -> starting value) of the NumPyro ``model``
    so that the statistics of its prior predictive meet the ``statements`` (see the module
    docstring).

    ``statistics``: name -> ``f(data) -> (num_simulations,)``, data ``{site: (S, ...)}``
    (every sampled site of the model; written with array methods or ``jax.numpy``, as they
    are differentiated). ``positive``: hyperparameters fitted on the log scale.
    ``model_kwargs``: other arguments of the model, held fixed. Raises
    :class:`ElicitationError` when the statements contradict each other or the fitted
    prior misses a stated quantile by more than ``tolerance`` scales.

    >>> import numpyro, numpyro.distributions as dist
    >>> def model(m0, s0, y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(m0, s0))
    ...     numpyro.sample("y", dist.Normal(mu, 1.0).expand([10]), obs=y)
    >>> fit = elicit(model, {"m0": 0.0, "s0": 1.0}, {"mean": lambda d: d["y"].mean(axis=1)},
    ...              [Quantiles("mean", {0.05: 2.0, 0.95: 8.0})], positive=["s0"], seed=1,
    ...              num_simulations=2000, steps=300)
    >>> abs(fit.hyperparameters["m0"] - 5.0) < 0.2   # the stated interval's centre
    True
    >>> abs(fit.hyperparameters["s0"] - 1.797) < 0.1  # sqrt((6 / 3.29)^2 - 1 / 10)
    True
    """
    import numpyro
    import optax

    if not callable(model):
        raise TypeError(f"elicit: model must be a NumPyro model function, got {model!r}")
    if not hyperparameters:
        raise ValueError("elicit: give at least one hyperparameter to fit")
    if not statements:
        raise ValueError("elicit: give at least one statement")
    for st in statements:
        if not isinstance(st, Quantiles):
            raise TypeError(f"elicit: statements must be Quantiles(...), got {st!r}")
    names = list(hyperparameters)
    unknown_pos = [p for p in positive if p not in names]
    if unknown_pos:
        raise KeyError(f"elicit: positive names {unknown_pos}, not hyperparameters {names}")
    bad_start = [p for p in positive if not float(hyperparameters[p]) > 0]
    if bad_start:
        raise ValueError(f"elicit: positive hyperparameters {bad_start} need a starting value > 0")
    unknown_stat = sorted({st.statistic for st in statements} - set(statistics))
    if unknown_stat:
        raise KeyError(
            f"elicit: statements name statistics {unknown_stat}; statistics given: "
            f"{sorted(statistics)}"
        )
    _check_order(statements)
    fixed = dict(model_kwargs or {})

    def simulate_one(key, eta):
        tr = numpyro.handlers.trace(numpyro.handlers.seed(model, key)).get_trace(**eta, **fixed)
        return {k: v["value"] for k, v in tr.items() if v["type"] == "sample"}

    keys = jax.random.split(as_key(seed), int(num_simulations))
    probe = simulate_one(keys[0], {k: jnp.asarray(float(v)) for k, v in hyperparameters.items()})
    stats_used = sorted({st.statistic for st in statements})
    for name in stats_used:
        _check_statistic(name, statistics[name], {k: v[None] for k, v in probe.items()})

    rows_spec = [
        (st.name, st.statistic, float(p), float(v))
        for st in statements
        for p, v in sorted(st.quantiles.items())
    ]
    scale = {}
    for stat in stats_used:
        vals = np.array([r[3] for r in rows_spec if r[1] == stat])
        spread = float(vals.max() - vals.min())
        scale[stat] = spread if spread > 0 else max(float(np.abs(vals).max()), 1.0)
    probs = jnp.array([r[2] for r in rows_spec])
    targets = jnp.array([r[3] for r in rows_spec])
    scales = jnp.array([scale[r[1]] for r in rows_spec])
    which = [stats_used.index(r[1]) for r in rows_spec]

    def to_eta(u):
        return {k: (jnp.exp(u[k]) if k in positive else u[k]) for k in names}

    def achieved(u):
        sims = jax.vmap(simulate_one, in_axes=(0, None))(keys, to_eta(u))
        values = [statistics[s](sims) for s in stats_used]
        qs = [jnp.quantile(values[w], p) for w, p in zip(which, probs, strict=True)]
        return jnp.stack(qs), values

    def loss(u):
        q, _ = achieved(u)
        return jnp.sum(((q - targets) / scales) ** 2)

    u = {
        k: jnp.log(float(v)) if k in positive else jnp.asarray(float(v), jnp.float32)
        for k, v in hyperparameters.items()
    }
    u = {k: jnp.asarray(v, jnp.float32) for k, v in u.items()}
    opt = optax.adam(learning_rate)
    state = opt.init(u)

    @jax.jit
    def step(u, state):
        val, g = jax.value_and_grad(loss)(u)
        upd, state = opt.update(g, state, u)
        return optax.apply_updates(u, upd), state, val

    history, best, best_val = [], u, np.inf
    for _ in range(int(steps)):
        new_u, state, val = step(u, state)  # val: the loss at u
        history.append(float(val))
        if np.isfinite(val) and val < best_val:
            best, best_val = u, float(val)
        if not all(bool(jnp.isfinite(v)) for v in new_u.values()):
            break  # pushed to a boundary (a scale to 0): keep the best point reached
        u = new_u
    if not np.isfinite(best_val):
        raise ElicitationError(
            "elicit: the loss is not finite at the starting hyperparameters; check that the "
            "statistics are finite for every prior predictive simulation"
        )
    u = best
    q, values = achieved(u)
    q = np.asarray(q, np.float64)
    miss = (q - np.asarray(targets)) / np.asarray(scales)
    rows = [(*r[:4], float(a), float(m)) for r, a, m in zip(rows_spec, q, miss, strict=True)]
    eta = {k: float(v) for k, v in to_eta(u).items()}
    missed = sorted({r[0] for r in rows if abs(r[5]) > tolerance})
    if missed:
        detail = "; ".join(
            f"{r[0]}: {r[2]:g}-quantile stated {r[3]:g}, best {r[4]:.3g}"
            for r in rows
            if abs(r[5]) > tolerance
        )
        raise ElicitationError(
            f"elicit: statements cannot be met together by this prior: {missed} ({detail}); "
            f"closest hyperparameters {eta}. Revise the statements, or give the prior more "
            f"freedom (another family or more hyperparameters)"
        )
    sims = {s: np.asarray(v, np.float64) for s, v in zip(stats_used, values, strict=True)}
    return ElicitedPrior(eta, rows, best_val, history, sims, tuple(statements), fixed)


def _check_statistic(name: str, fn: Callable, batch: Mapping[str, Any]) -> None:
    try:
        v = jnp.asarray(fn(dict(batch)))
    except Exception as err:
        raise ValueError(
            f"elicit: statistic {name!r} failed on a simulated batch with sites "
            f"{sorted(batch)} ({type(err).__name__}: {err}); statistics take {{site: (S, ...)}} "
            f"and return (S,), written with array methods or jax.numpy"
        ) from err
    if v.shape != (1,):
        raise ValueError(
            f"elicit: statistic {name!r} must return one number per simulation, shape (1,) "
            f"for one, got {v.shape}"
        )
