"""Scoring rules: losses whose minimizers are posterior summaries (guide section 6.7).

A strictly proper scoring rule ``S(P, theta)`` is minimized in expectation over
``theta ~ p(theta | x)`` by the statistic it names, so a network trained on simulations
``(theta, x)`` to minimize ``E S(f(x), theta)`` learns that statistic of the posterior for
every ``x`` (the Bayes estimator under that loss):

- :class:`NormedDifferenceScore` ``|theta - v|^k`` (summed over dimensions): ``k = 2`` gives
  the posterior mean (:class:`MeanScore`), ``k = 1`` the median (:class:`MedianScore`);
- :class:`QuantileScore` the pinball loss ``(q - 1{theta < v_q})(theta - v_q)`` for each
  level ``q``: the marginal posterior quantiles, built as a base plus positive increments so
  that they never cross;
- :class:`MvNormalScore` the negative log density of ``N(mean, covariance)``: the normal
  closest to the posterior in KL, from which ``sample`` and ``log_prob`` follow;
  :class:`MixtureScore` the same for a mixture of normals (multimodal posteriors).

Each rule maps the raw outputs of a network head to its statistics (``statistics``) and
scores them against the true parameters (``score``, one number per row). All of this runs
in the network's standardized space; :class:`~amortized.ScoringRuleApproximator` maps the
statistics back to the original space, which is exact for quantiles and medians under any
increasing map (a constraint's log or logit) but for means and normal moments only under
affine maps, so it refuses those on constrained variables by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ._validation import strict

__all__ = [
    "BrierScore",
    "CrossEntropyScore",
    "MeanScore",
    "MedianScore",
    "MixtureScore",
    "MvNormalScore",
    "NormedDifferenceScore",
    "QuantileScore",
    "ScoringRule",
    "rule_from_config",
]


class ScoringRule:
    """Base class. ``equivariance``: ``"monotone"`` when the statistics of an increasing
    elementwise map of theta are that map of the statistics (quantiles, medians),
    ``"affine"`` when this holds for affine maps only (means, normal moments)."""

    equivariance = "affine"
    #: whether the rule defines a density (sample / log_prob)
    parametric = False
    #: whether the target is a one-hot category (model comparison) rather than parameters
    categorical = False
    #: how each statistic maps to the original space: "location" (has the parameters'
    #: dimension last), "covariance" (``(..., dim, dim)``), "invariant" (unchanged, e.g.
    #: mixture weights) or "internal" (a parametrization, not reported)
    kinds: Mapping[str, str] = {}

    def kind(self, stat: str) -> str:
        return self.kinds.get(stat, "location")

    def config(self) -> dict[str, Any]:
        return {}

    def head_sizes(self, dim: int) -> dict[str, int]:
        """Raw outputs per head for ``dim`` parameters."""
        raise NotImplementedError  # abstract

    def statistics(self, raw: Mapping[str, jax.Array], dim: int) -> dict[str, jax.Array]:
        """Raw head outputs ``(B, size)`` -> the statistics ``(B, ..., dim)``."""
        raise NotImplementedError  # abstract

    def score(self, stats: Mapping[str, jax.Array], theta: jax.Array) -> jax.Array:
        """``(B,)``: the rule's loss of the statistics against the true ``theta (B, dim)``."""
        raise NotImplementedError  # abstract

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self.config())))


class NormedDifferenceScore(ScoringRule):
    """``sum_d |theta_d - v_d|^k``, ``k > 0`` (default 2): minimized by the posterior mean
    for ``k = 2`` and the median for ``k = 1``; statistic ``"value"`` ``(B, dim)``.

    >>> s = bf.scoring_rules.NormedDifferenceScore(k=2)
    >>> float(s.score({"value": jnp.zeros((1, 2))}, jnp.array([[1.0, 2.0]]))[0])
    5.0
    """

    @strict
    def __init__(self, k: float = 2.0):
        if not (isinstance(k, int | float) and k > 0 and math.isfinite(k)):
            raise ValueError(f"NormedDifferenceScore: k must be a positive number, got {k!r}")
        self.k = float(k)
        # the median (k = 1) commutes with increasing maps; other k only with affine ones
        self.equivariance = "monotone" if self.k == 1.0 else "affine"

    def config(self) -> dict[str, Any]:
        return {"k": self.k}

    @property
    def label(self) -> str:
        """What ``"value"`` is, in words."""
        return {1.0: "median", 2.0: "mean"}.get(self.k, f"minimizer of E|theta - v|^{self.k:g}")

    def head_sizes(self, dim):
        return {"value": dim}

    def statistics(self, raw, dim):
        return {"value": raw["value"]}

    def score(self, stats, theta):
        return jnp.sum(jnp.abs(theta - stats["value"]) ** self.k, axis=-1)


class MeanScore(NormedDifferenceScore):
    """Squared error: the posterior mean (``"value"``)."""

    @strict
    def __init__(self):
        super().__init__(k=2.0)

    def config(self) -> dict[str, Any]:
        return {}


class MedianScore(NormedDifferenceScore):
    """Absolute error: the marginal posterior medians (``"value"``)."""

    @strict
    def __init__(self):
        super().__init__(k=1.0)

    def config(self) -> dict[str, Any]:
        return {}


class QuantileScore(ScoringRule):
    """Pinball loss at levels ``q`` (default 0.1, 0.5, 0.9): the marginal quantiles,
    statistic ``"value"`` ``(B, len(q), dim)``, increasing in q by construction (the lowest
    level plus softplus increments), so they never cross.

    >>> s = bf.scoring_rules.QuantileScore(q=[0.25, 0.75])
    >>> s.q
    (0.25, 0.75)
    """

    equivariance = "monotone"

    @strict
    def __init__(self, q: Sequence[float] = (0.1, 0.5, 0.9)):
        levels = tuple(float(v) for v in q)
        if not levels or any(not 0.0 < v < 1.0 for v in levels):
            raise ValueError(f"QuantileScore: q must be levels in (0, 1), got {q!r}")
        if any(b <= a for a, b in zip(levels, levels[1:], strict=False)):
            raise ValueError(f"QuantileScore: q must be strictly increasing, got {q!r}")
        self.q = levels

    def config(self) -> dict[str, Any]:
        return {"q": list(self.q)}

    def head_sizes(self, dim):
        return {"value": len(self.q) * dim}

    def statistics(self, raw, dim):
        r = raw["value"].reshape(raw["value"].shape[0], len(self.q), dim)
        steps = jax.nn.softplus(r[:, 1:])
        return {"value": jnp.concatenate([r[:, :1], r[:, :1] + jnp.cumsum(steps, axis=1)], 1)}

    def score(self, stats, theta):
        levels = jnp.asarray(self.q)[None, :, None]
        diff = theta[:, None, :] - stats["value"]
        return jnp.sum(jnp.maximum(levels * diff, (levels - 1.0) * diff), axis=(1, 2))


class MvNormalScore(ScoringRule):
    """Negative log density of ``N(mean, covariance)``: statistics ``"mean"`` ``(B, dim)``
    and ``"covariance"`` ``(B, dim, dim)``; parametrized by a lower-triangular scale with a
    positive diagonal, so the covariance is always valid. Gives ``sample`` and ``log_prob``.
    """

    parametric = True
    kinds = {"mean": "location", "covariance": "covariance", "scale_tril": "internal"}

    @strict
    def __init__(self):
        pass

    def head_sizes(self, dim):
        return {"mean": dim, "scale_tril": dim * (dim + 1) // 2}

    @staticmethod
    def _tril(raw, dim):
        rows, cols = jnp.tril_indices(dim)
        lower = jnp.zeros((raw.shape[0], dim, dim)).at[:, rows, cols].set(raw)
        diag = jax.nn.softplus(jnp.diagonal(lower, axis1=1, axis2=2) + 0.5413) + 1e-4
        eye = jnp.eye(dim)[None]
        return jnp.where(eye > 0, diag[:, :, None] * eye, lower)

    def statistics(self, raw, dim):
        scale = self._tril(raw["scale_tril"], dim)
        return {
            "mean": raw["mean"],
            "scale_tril": scale,
            "covariance": scale @ jnp.swapaxes(scale, 1, 2),
        }

    def log_prob(self, stats, theta):
        """``log N(theta; mean, L L^T)``, ``(B,)``."""
        scale = stats["scale_tril"]
        white = jax.scipy.linalg.solve_triangular(
            scale, (theta - stats["mean"])[..., None], lower=True
        )[..., 0]
        dim = theta.shape[-1]
        log_det = jnp.sum(jnp.log(jnp.diagonal(scale, axis1=1, axis2=2)), axis=-1)
        return -0.5 * jnp.sum(white**2, -1) - log_det - 0.5 * dim * jnp.log(2 * jnp.pi)

    def sample(self, stats, key):
        """One draw per row, ``(B, dim)``."""
        eps = jax.random.normal(key, stats["mean"].shape)
        return stats["mean"] + (stats["scale_tril"] @ eps[..., None])[..., 0]

    def score(self, stats, theta):
        return -self.log_prob(stats, theta)


class MixtureScore(ScoringRule):
    """Negative log density of a mixture of ``num_components`` (default 3) multivariate
    normals: statistics ``"weights"`` ``(B, K)``, ``"mean"`` ``(B, K, dim)`` and
    ``"covariance"`` ``(B, K, dim, dim)``; for multimodal posteriors. Gives ``sample`` and
    ``log_prob``. Components are exchangeable, so their order carries no meaning.

    >>> s = bf.scoring_rules.MixtureScore(num_components=2)
    >>> s.head_sizes(3)
    {'logits': 2, 'mean': 6, 'scale_tril': 12}
    """

    parametric = True
    kinds = {
        "weights": "invariant",
        "log_weights": "internal",
        "mean": "location",
        "covariance": "covariance",
        "scale_tril": "internal",
    }

    @strict
    def __init__(self, num_components: int = 3):
        if isinstance(num_components, bool) or not isinstance(num_components, int):
            raise ValueError(
                f"MixtureScore: num_components must be a positive integer, got {num_components!r}"
            )
        if num_components < 1:
            raise ValueError(
                f"MixtureScore: num_components must be a positive integer, got {num_components!r}"
            )
        self.num_components = num_components

    def config(self) -> dict[str, Any]:
        return {"num_components": self.num_components}

    def head_sizes(self, dim):
        k = self.num_components
        return {"logits": k, "mean": k * dim, "scale_tril": k * dim * (dim + 1) // 2}

    def statistics(self, raw, dim):
        b, k = raw["logits"].shape[0], self.num_components
        tri = raw["scale_tril"].reshape(b * k, dim * (dim + 1) // 2)
        scale = MvNormalScore._tril(tri, dim).reshape(b, k, dim, dim)
        return {
            "weights": jax.nn.softmax(raw["logits"], axis=-1),
            "log_weights": jax.nn.log_softmax(raw["logits"], axis=-1),
            "mean": raw["mean"].reshape(b, k, dim),
            "scale_tril": scale,
            "covariance": scale @ jnp.swapaxes(scale, -1, -2),
        }

    def log_prob(self, stats, theta):
        """``log sum_k w_k N(theta; mean_k, L_k L_k^T)``, ``(B,)``."""
        b, k, dim = stats["mean"].shape
        flat = {
            "mean": stats["mean"].reshape(b * k, dim),
            "scale_tril": stats["scale_tril"].reshape(b * k, dim, dim),
        }
        per = MvNormalScore().log_prob(flat, jnp.repeat(theta, k, axis=0)).reshape(b, k)
        return jax.scipy.special.logsumexp(stats["log_weights"] + per, axis=-1)

    def sample(self, stats, key):
        """One draw per row, ``(B, dim)``: a component by its weight, then its normal."""
        k_pick, k_draw = jax.random.split(key)
        pick = jax.random.categorical(k_pick, stats["log_weights"], axis=-1)
        rows = jnp.arange(pick.shape[0])
        one = {"mean": stats["mean"][rows, pick], "scale_tril": stats["scale_tril"][rows, pick]}
        return MvNormalScore().sample(one, k_draw)

    def score(self, stats, theta):
        return -self.log_prob(stats, theta)


class CategoricalScore(ScoringRule):
    """Base of the rules for a categorical target (a one-hot ``theta (B, K)``: which of
    ``K`` models made the data): one head ``"logits"`` ``(B, K)``; statistics
    ``"probs"`` (the softmax, the posterior model probabilities under the training
    frequencies of the models) and ``"logits"``. Targets are never standardized."""

    categorical = True
    kinds = {"logits": "categorical", "probs": "categorical"}

    @strict
    def __init__(self):
        pass

    def head_sizes(self, dim):
        return {"logits": dim}

    def statistics(self, raw, dim):
        return {"logits": raw["logits"], "probs": jax.nn.softmax(raw["logits"], axis=-1)}


class CrossEntropyScore(CategoricalScore):
    """``-log p_k`` of the true model ``k`` (the logarithmic score): strictly proper, so
    its minimizer is the posterior model probability; the default of model comparison.

    >>> s = bf.scoring_rules.CrossEntropyScore()
    >>> stats = s.statistics({"logits": jnp.zeros((1, 2))}, 2)
    >>> round(float(s.score(stats, jnp.array([[0.0, 1.0]]))[0]), 4)   # log 2
    0.6931
    """

    def score(self, stats, theta):
        return -jnp.sum(theta * jax.nn.log_softmax(stats["logits"], axis=-1), axis=-1)


class BrierScore(CategoricalScore):
    """``sum_j (p_j - 1{j = k})^2`` (the multiclass Brier score): strictly proper and
    bounded, so single confidently wrong predictions weigh less than under
    :class:`CrossEntropyScore`, at the price of weaker gradients for probabilities near 0
    or 1 (large Bayes factors are learned less sharply).

    >>> s = bf.scoring_rules.BrierScore()
    >>> stats = s.statistics({"logits": jnp.zeros((1, 2))}, 2)
    >>> float(s.score(stats, jnp.array([[0.0, 1.0]]))[0])   # 0.5^2 + 0.5^2
    0.5
    """

    def score(self, stats, theta):
        return jnp.sum((stats["probs"] - theta) ** 2, axis=-1)


RULES = {
    c.__name__: c
    for c in (
        BrierScore,
        CrossEntropyScore,
        MeanScore,
        MedianScore,
        MixtureScore,
        MvNormalScore,
        NormedDifferenceScore,
        QuantileScore,
    )
}


def rule_from_config(entry: Mapping[str, Any]) -> ScoringRule:
    """A rule from ``{"class": name, **config}`` (how networks store their rules)."""
    name = entry.get("class")
    if name not in RULES:
        raise ValueError(f"unknown scoring rule {name!r}; known: {sorted(RULES)}")
    return RULES[name](**{k: v for k, v in entry.items() if k != "class"})


def rule_config(rule: ScoringRule) -> dict[str, Any]:
    return {"class": type(rule).__name__, **rule.config()}
