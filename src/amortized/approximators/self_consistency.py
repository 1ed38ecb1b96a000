"""Self-consistency: the amortized posterior trained to agree with the model's likelihood.

For a model with a likelihood, Bayes' rule makes

    log p(y) = log p(theta) + log p(y | theta) - log p(theta | y)

the same number for every theta. With the amortized posterior q in place of p(theta | y),
the right-hand side ``w(theta) = log p(theta, y) - log q(theta | y)`` varies over draws
theta ~ q(. | y) unless q is exact; its variance over draws is zero exactly when q is the
posterior (Schmitt et al., 2024, "Leveraging self-consistency for data-efficient amortized
Bayesian inference"). Added to the training loss with a weight, it teaches the network the
likelihood's shape on data it was not simulated on: on fresh simulations, or on unlabeled
observed datasets (semi-supervised), where no parameters are known.

The term, per dataset y with S draws theta_s ~ q(. | y) (draws held fixed: gradients flow
through log q only):

    r_s = w(theta_s) - median_s w(theta_s)
    penalty(y) = mean_s 2 huber_T(r_s)      (r_s^2 for |r_s| <= T, linear beyond)

the variance of w about its median, made robust: early in training and on datasets far
from the simulations q puts draws where the likelihood is tiny or zero, and a squared
residual of hundreds of nats (or 10^17: a GEV density far outside its bulk) would swamp
the posterior's own loss. Residuals beyond 2T count as 2T in value and as T in gradient;
a draw outside the model's support (log p = -inf) gets that largest gradient, pushing q
down there. All of it lives in the adapter's space (where the network's draws are); the
adapter's inverse maps a draw to the model's parameters and its log|det J| corrects the
density.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import core
from .core import IV

#: simulations drawn for the term when no unlabeled datasets are given
DEFAULT_POOL_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class SelfConsistency:
    """The self-consistency term of training (module docstring): pass it to a workflow's
    ``fit_offline`` / ``fit_online`` / ``fit_disk`` as ``self_consistency=``.

    Parameters
    ----------
    weight : float, default 1.0
        Multiplies the term; it rises linearly from 0 over the first ``warmup_epochs``
        epochs, because the term only says something useful once q is roughly right.
    unlabeled : dict of arrays, optional
        Observed datasets without parameters ``{observed site: (num_datasets, ...)}``
        (semi-supervised training on the data to be analysed). Default: ``pool_size``
        fresh simulations of the model (their parameters unused).
    num_draws : int, default 16
        Draws per dataset whose spread is penalized.
    batch_size : int, default 32
        Datasets of the pool per training step.
    threshold : float, default 5.0
        Residuals (nats) beyond which the penalty grows linearly (Huber).
    warmup_epochs : int, default 5
    pool_size : int, default 1024

    Examples
    --------
    >>> sc = bf.SelfConsistency(weight=0.5, num_draws=8)
    >>> sc.weight
    0.5
    """

    weight: float = 1.0
    unlabeled: Mapping[str, Any] | None = dataclasses.field(default=None, repr=False)
    num_draws: int = 16
    batch_size: int = 32
    threshold: float = 5.0
    warmup_epochs: int = 5
    pool_size: int = DEFAULT_POOL_SIZE

    def __post_init__(self):
        if not (isinstance(self.weight, int | float) and self.weight > 0):
            raise ValueError(
                f"SelfConsistency: weight must be a positive number, got {self.weight!r}"
            )
        if not (isinstance(self.threshold, int | float) and self.threshold > 0):
            raise ValueError(
                "SelfConsistency: threshold must be a positive number (nats), got "
                f"{self.threshold!r}"
            )
        for name in ("num_draws", "batch_size", "pool_size"):
            v = getattr(self, name)
            if not (isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 2):
                raise ValueError(f"SelfConsistency: {name} must be an integer >= 2, got {v!r}")
        w = self.warmup_epochs
        if not (isinstance(w, int | np.integer) and not isinstance(w, bool) and w >= 0):
            raise ValueError(f"SelfConsistency: warmup_epochs must be an integer >= 0, got {w!r}")
        if self.unlabeled is not None and not isinstance(self.unlabeled, Mapping):
            raise TypeError(
                "SelfConsistency: unlabeled must be a dict {observed site: (num_datasets, ...)}, "
                f"got {type(self.unlabeled).__name__}"
            )

    def settings(self) -> dict[str, Any]:
        """The settings (JSON) that a checkpoint's fingerprint records."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["unlabeled"] = None if self.unlabeled is None else sorted(self.unlabeled)
        return out


@dataclasses.dataclass(frozen=True)
class SelfConsistencyTerm:
    """What training needs for the term: the settings, the model's log density in the
    adapter's space (:func:`adapter_space_log_joint`), and the pool of datasets as network
    arrays (``conditions``, no ``inference_variables``) and as the model's observed sites
    (``observed``), both with ``num_datasets`` leading."""

    config: SelfConsistency
    log_joint: Callable[[jax.Array, Mapping[str, jax.Array]], jax.Array]
    conditions: Mapping[str, jax.Array]
    observed: Mapping[str, jax.Array]


def adapter_space_log_joint(model, adapter, x: jax.Array, observed) -> jax.Array:
    """log p(theta(x), y) + log|d theta / d x| for adapter-space draws ``x`` ``(n, S, dim)``
    of each dataset's observed sites ``observed`` ``{site: (n, ...)}``, ``(n, S)``; -inf
    outside the model's support. Traceable (the adapter's steps use ``jax.numpy`` on JAX
    arrays)."""
    n, s = x.shape[:2]
    flat = adapter.inverse({IV: x.reshape(n * s, *x.shape[2:])})
    missing = [k for k in model.latent_sites if k not in flat]
    if missing:
        raise ValueError(
            f"self_consistency: the adapter's inverse of inference_variables gives "
            f"{sorted(k for k in flat if k != IV)}, not the model's latent site(s) {missing}; "
            f"every latent site must be inferred for the model's density to be evaluated"
        )
    theta = {k: jnp.asarray(flat[k]) for k in model.latent_sites}
    _, ldj = adapter.forward({**theta}, strict=False, log_det_jac=True, check_support=False)
    # log|dx/dtheta| of the forward map; the density of x is p(theta) / |dx/dtheta|
    fwd_ldj = jnp.sum(jnp.reshape(ldj[IV], (n * s, -1)), axis=-1) if IV in ldj else 0.0
    params = {k: v.reshape(n, s, *v.shape[1:]) for k, v in theta.items()}
    lp = model.log_joint(params, observed)
    lp = lp - jnp.reshape(fwd_ldj, (n, s)) if IV in ldj else lp
    return jnp.where(jnp.isnan(lp), -jnp.inf, lp)


def log_densities(nets, stats, key, conditions, observed, num_draws: int, log_joint):
    """log p(theta, y) and log q(theta | y) at ``num_draws`` draws of q per dataset, each
    ``(n, num_draws)``: the draws and log p held fixed, log q differentiable (through the
    inference and summary networks)."""
    n = jax.tree.leaves(conditions)[0].shape[0]
    cond = jnp.repeat(core.conditions(nets, stats, conditions, n), num_draws, axis=0)
    z = jax.lax.stop_gradient(nets.inference.sample(key, jax.lax.stop_gradient(cond)))
    event = nets.inference.event_shape
    adjustment = core._repeat(core._adjustment(nets, stats, conditions), num_draws)
    lq = nets.inference.log_prob(z, cond) + core._log_det(stats, event, adjustment)
    x = jax.lax.stop_gradient(core._from_network(stats, nets, z, (n, num_draws), adjustment))
    lp = jax.lax.stop_gradient(log_joint(x.reshape(n, num_draws, -1), observed))
    return lp, lq.reshape(n, num_draws)


def penalty(lp: jax.Array, lq: jax.Array, threshold: float) -> jax.Array:
    """Mean over datasets and draws of 2 huber_T(r), ``r = w - median w``, ``w = lp - lq``
    (module docstring); ``lp``, ``lq`` ``(n, S)``. The value of ``r`` is clipped to
    [-2T, 2T] (its gradient is left as is): a GEV density far outside its bulk reached
    -1e17 and made the loss infinite, where only the direction of its gradient, at the
    linear regime's slope, is of use. A draw with log p = -inf counts as ``r = -2T``: its
    gradient pushes that draw's log q down."""
    finite = jnp.isfinite(lp)
    w = jax.lax.stop_gradient(jnp.where(finite, lp, 0.0) - lq)
    center = jnp.nanmedian(jnp.where(finite, w, jnp.nan), axis=1)
    center = jnp.where(jnp.isnan(center), 0.0, center)[:, None]
    bound = 2.0 * threshold
    value = jnp.clip(jnp.where(finite, w - center, -bound), -bound, bound)
    r = value + (jax.lax.stop_gradient(lq) - lq)  # the value above, d r / d log q = -1
    a = jnp.abs(r)
    huber = jnp.where(a <= threshold, 0.5 * r * r, threshold * (a - 0.5 * threshold))
    return 2.0 * jnp.mean(huber)


def with_self_consistency(base_loss, term: SelfConsistencyTerm, steps_per_epoch: int):
    """``base_loss`` plus the weighted term on a random batch of the pool at each training
    step; validation (``train=False``) is ``base_loss`` alone, so that epochs are still
    ranked by the posterior's held-out loss."""
    cfg = term.config
    pool_n = int(jax.tree.leaves(term.conditions)[0].shape[0])
    b = min(cfg.batch_size, pool_n)
    ramp = max(1, cfg.warmup_epochs * steps_per_epoch)
    conditions, observed = dict(term.conditions), dict(term.observed)

    def loss_fn(nets, stats, batch, key, train=True, step=None):
        k_base, k_pick, k_draw = jax.random.split(key, 3)
        value = base_loss(nets, stats, batch, k_base, train, step)
        if not train:
            return value
        idx = jax.random.choice(k_pick, pool_n, (b,), replace=False)
        pick = jax.tree.map(lambda a: a[idx], (conditions, observed))
        lp, lq = log_densities(nets, stats, k_draw, *pick, cfg.num_draws, term.log_joint)
        scale = 1.0 if cfg.warmup_epochs == 0 or step is None else jnp.minimum(step / ramp, 1.0)
        return value + cfg.weight * scale * penalty(lp, lq, cfg.threshold)

    return loss_fn


def check_network(network) -> None:
    """Raise unless ``network`` has an exact density of its draws (some networks know only
    once built, when their dimension is known: training checks the built one again)."""
    if not getattr(network, "has_log_prob", False):
        raise ValueError(
            f"self_consistency: {type(network).__name__} has no density q(theta | y); "
            f"use a network with one (CouplingFlow, FlowMatching)"
        )
    caveat = getattr(network, "log_prob_caveat", None)
    if caveat is not None:
        raise ValueError(f"self_consistency needs the exact log q of the draws: {caveat}")


def prepare(config: Any, model: Any, approximator: Any, seed: int | None) -> SelfConsistencyTerm:
    """Check ``config`` against the workflow's ``model`` (None for a plain simulator) and
    ``approximator``, and build the term: the pool (``config.unlabeled``, else
    ``config.pool_size`` simulations of the model with ``seed``) as network arrays and
    observed sites. Errors name what is missing."""
    from . import condition_checks

    if not isinstance(config, SelfConsistency):
        raise TypeError(
            f"self_consistency must be a bf.SelfConsistency(...), got {type(config).__name__}"
        )
    if model is None:
        raise ValueError(
            "self_consistency needs the model's likelihood: build the workflow from a "
            "bf.NumPyroModel or bf.LikelihoodModel (simulator=model); a plain simulator "
            "gives draws but no density, so log p(theta, y) cannot be evaluated"
        )
    # an ensemble's members share the adapter; each member's network must have a density
    members = getattr(approximator, "members", [approximator])
    approximator = members[0]
    for member in members:
        check_network(member.inference_network)
    if approximator.adapter is None:
        raise ValueError(
            "self_consistency: the approximator has no adapter, so its inference_variables "
            "cannot be mapped to the model's latent sites"
        )
    if config.unlabeled is None:
        sims = model.sample(config.pool_size, seed=seed)
        pool = {k: v for k, v in sims.items() if k not in model.latent_sites}
    else:
        pool = dict(config.unlabeled)
        given = [k for k in model.latent_sites if k in pool]
        if given:
            raise ValueError(
                f"SelfConsistency.unlabeled holds the latent site(s) {given}; unlabeled data "
                f"are observed datasets only (drop the parameters, or train on them as "
                f"simulations)"
            )
        model.check_data(pool, "SelfConsistency.unlabeled")
        condition_checks.condition_routes(
            approximator.adapter, pool, "SelfConsistency.unlabeled", True, None
        )
    conditions = approximator.to_network_arrays(
        pool, need_variables=False, where="SelfConsistency.unlabeled"
    )
    observed = {k: jnp.asarray(np.asarray(pool[k]), jnp.float32) for k in model.observed}

    def log_joint(x, obs):
        return adapter_space_log_joint(model, approximator.adapter, x, obs)

    return SelfConsistencyTerm(config, log_joint, conditions, observed)
