"""RatioNetwork: contrastive neural ratio estimation (NRE-C; Miller et al. 2022).

A classifier ``f(theta, x)`` learns the likelihood-to-evidence ratio
``log r(theta, x) = log p(x | theta) - log p(x) = log p(theta | x) - log p(theta)``. Each
training row ``(theta_1, x)`` from the joint gets ``K - 1`` contrasting parameters from
other rows of the batch (draws of the marginal), and ``K`` more for a fully marginal set.
With class odds ``gamma`` between "one of the K is the joint draw" and "none is",

    q(y = 1 | Theta, x) = gamma r_1 / (K + gamma sum_k r_k),
    q(y = 0 | Theta, x) = K / (K + gamma sum_k r_k),

and the loss ``-(gamma log q(y = 1) + log q(y = 0)) / (1 + gamma)`` is minimized by the
exact ratio (not only up to a constant, unlike the binary classifier with ``K = 1``
contrasts at large ``gamma``). The ratio does not depend on how theta is parametrized (both
densities transform alike), so the value in the standardized space the network works in is
the ratio in the original space. No draws and no density: the posterior
``p(theta) r(theta, x)`` is sampled by MCMC (:class:`~amortized.approximators.RatioApproximator`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import strict, strict_kwargs
from .base import InferenceNetwork, encode_config
from .mlp import MLP, split_dropout_key

MLP_OPTIONS = ("widths", "activation", "dropout", "residual")
#: Four residual layers, not the two of the other classifiers: a ratio is sharp where the
#: posterior is narrow (a ridge in (theta, x) that moves with x), and two layers of 256
#: smoothed it: on sbibm two_moons (10^4 simulations, posterior by importance resampling of
#: 4x10^5 prior draws) C2ST 0.77-0.80 with two layers (also with K = 10, gamma = 5, no
#: dropout, batch 256 or a lower learning rate), 0.51-0.53 with four (benchmarks/LOG.md,
#: session 22).
DEFAULT_WIDTHS = (256, 256, 256, 256)


class RatioNetwork(InferenceNetwork):
    """The classifier of contrastive neural ratio estimation.

    Parameters
    ----------
    subnet_kwargs : dict, optional
        Options of the :class:`~amortized.networks.MLP` on ``(theta, conditions)``
        (``widths`` default four layers of 256, see :data:`DEFAULT_WIDTHS`,
        ``activation``, ``dropout``, ``residual``).
    gamma : float, default 1.0
        Odds of a row holding one joint draw against none (BayesFlow's ``gamma``).
    K : int, default 5
        Parameters contrasted per row (BayesFlow's ``K``); needs batches of more than K.

    >>> net = bf.networks.RatioNetwork(K=3).build(2, 4, jax.random.key(0))
    >>> net.log_ratio(jnp.zeros((5, 2)), jnp.zeros((5, 4))).shape
    (5,)
    """

    mlp: MLP | None
    gamma: float = eqx.field(static=True)
    K: int = eqx.field(static=True)

    has_log_prob = False
    #: no draws: the posterior needs MCMC on log prior + log ratio
    can_sample = False
    #: the loss contrasts each row with other rows of its batch, so validation losses are
    #: taken per group of this many examples, not per example (training.fit)
    validation_group = 32

    @strict
    def __init__(
        self,
        subnet_kwargs: Mapping[str, Any] | None = None,
        gamma: float = 1.0,
        K: int = 5,  # noqa: N803 (BayesFlow's name)
        dim: int = 0,
        cond_dim: int = 0,
        key: jax.Array | None = None,
        layout: tuple | None = None,
    ):
        if not (isinstance(gamma, int | float) and 0 < gamma < math.inf):
            raise ValueError(f"RatioNetwork: gamma must be a positive number, got {gamma!r}")
        if isinstance(K, bool) or not isinstance(K, int) or K < 1:
            raise ValueError(f"RatioNetwork: K must be a positive integer, got {K!r}")
        sub = {"widths": DEFAULT_WIDTHS} | strict_kwargs(
            "RatioNetwork(subnet_kwargs)", subnet_kwargs, MLP_OPTIONS
        )
        sub["widths"] = list(sub["widths"])
        self.gamma, self.K = float(gamma), int(K)
        self.config_json = encode_config(subnet_kwargs=sub, gamma=self.gamma, K=self.K)
        self.dim, self.cond_dim = int(dim), int(cond_dim)
        if layout is not None:
            raise ValueError(
                "RatioNetwork: image-valued parameters are not supported; return them flat "
                "from the simulator"
            )
        self.layout = None
        if self.dim == 0:
            self.mlp = None
            return
        if key is None:
            raise ValueError("RatioNetwork: building needs a PRNG key")
        self.mlp = MLP(self.dim + self.cond_dim, 1, key=key, **sub)

    @property
    def log_prob_caveat(self) -> str | None:
        return (
            "RatioNetwork has no density: it estimates log p(x | theta) - log p(x); the "
            "posterior is p(theta) times its exponential, sampled by MCMC"
        )

    def _logits(self, theta: jax.Array, cond: jax.Array, keys=None) -> jax.Array:
        """``f`` for ``theta (B, K, dim)`` and ``cond (B, cond_dim)``: ``(B, K)``."""
        b, k, _ = theta.shape
        c = jnp.broadcast_to(cond[:, None, :], (b, k, cond.shape[-1]))
        rows = jnp.concatenate([theta, c], axis=-1).reshape(b * k, -1)
        out = self.mlp.rows(rows) if keys is None else self.mlp.train_rows(rows, keys)
        return out.reshape(b, k)

    def log_ratio(self, x: jax.Array, cond: jax.Array) -> jax.Array:
        """``log r(theta, x)`` ``(B,)`` for parameters ``x (B, dim)`` (standardized) and
        conditions ``cond (B, cond_dim)``."""
        self._require_built("log_ratio")
        return self._logits(x[:, None, :], cond)[:, 0]

    def loss(self, x, cond, key, train=True, step=None):
        self._require_built("loss")
        b = x.shape[0]
        if b <= self.K:
            raise ValueError(
                f"RatioNetwork: a batch of {b} rows cannot give each row K={self.K} "
                f"contrasting parameters from other rows; use a batch_size above {self.K}"
            )
        k_idx, k_drop = jax.random.split(key)
        # K other rows per row (never the row itself): draws of the marginal of theta
        r = jax.random.randint(k_idx, (b, self.K), 0, b - 1)
        idx = r + (r >= jnp.arange(b)[:, None]).astype(r.dtype)
        others = x[idx]  # (B, K, dim)
        joint = jnp.concatenate([x[:, None, :], others[:, : self.K - 1]], axis=1)
        n = b * self.K
        keys = split_dropout_key(k_drop, 2 * n) if train else None
        f_joint = self._logits(joint, cond, None if keys is None else keys[:n])
        f_marg = self._logits(others, cond, None if keys is None else keys[n:])
        log_k, log_g = math.log(self.K), math.log(self.gamma)

        def log_denominator(f):  # log(K + gamma sum_k exp f_k)
            return jnp.logaddexp(log_k, log_g + jax.scipy.special.logsumexp(f, axis=1))

        log_q_joint = log_g + f_joint[:, 0] - log_denominator(f_joint)
        log_q_marginal = log_k - log_denominator(f_marg)
        return -jnp.mean(self.gamma * log_q_joint + log_q_marginal) / (1.0 + self.gamma)

    def log_prob(self, x, cond):
        raise NotImplementedError(f"{self.log_prob_caveat}; use log_ratio")

    def sample(self, key, cond):
        raise NotImplementedError(
            "RatioNetwork has no draws: sample the posterior by MCMC on log prior + log "
            "ratio (RatioApproximator.model(...) with bf.workflow.mcmc_posterior)"
        )
