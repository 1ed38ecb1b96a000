"""ScoringRuleNetwork and PointNetwork: posterior summaries by minimizing scoring rules.

One MLP maps the conditions (standardized direct conditions and learned summaries) to the
raw outputs of every rule's heads; the training loss is the sum over rules of their mean
score (:mod:`amortized.scoring_rules`). Not a generative model: ``sample`` and ``log_prob``
exist only when a parametric rule (:class:`~amortized.scoring_rules.MvNormalScore`) is
among the rules, and then come from that rule's distribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import scoring_rules as sr
from .._validation import strict, strict_kwargs
from .base import InferenceNetwork, encode_config
from .mlp import MLP, split_dropout_key

MLP_OPTIONS = ("widths", "activation", "dropout", "residual")
POINT_STATISTICS = {"mean": sr.MeanScore, "median": sr.MedianScore, "quantiles": sr.QuantileScore}


def _rules(where: str, scoring_rules: Any) -> dict[str, sr.ScoringRule]:
    if not isinstance(scoring_rules, Mapping) or not scoring_rules:
        raise TypeError(
            f"{where}: scoring_rules must be a non-empty dict of name -> ScoringRule, got "
            f"{scoring_rules!r}"
        )
    out = {}
    for name, rule in scoring_rules.items():
        if isinstance(rule, Mapping):  # a stored config, when a saved network is rebuilt
            rule = sr.rule_from_config(rule)
        if not isinstance(rule, sr.ScoringRule):
            raise TypeError(
                f"{where}: scoring_rules[{name!r}] must be a bf.scoring_rules rule "
                f"({', '.join(sorted(sr.RULES))}), got {type(rule).__name__}"
            )
        out[str(name)] = rule
    if len({r.categorical for r in out.values()}) > 1:
        raise TypeError(
            f"{where}: scoring_rules mixes categorical rules (model indices) with rules for "
            f"parameters: {', '.join(f'{n}={r!r}' for n, r in out.items())}"
        )
    return out


class ScoringRuleNetwork(InferenceNetwork):
    """Learns the statistics named by several scoring rules at once (guide 6.7.1).

    Parameters
    ----------
    scoring_rules : dict of str -> ScoringRule
        E.g. ``{"mean": MeanScore(), "quantiles": QuantileScore(q=[0.1, 0.5, 0.9])}``; the
        loss is the sum of their mean scores.
    subnet_kwargs : dict, optional
        Options of the shared :class:`~amortized.networks.MLP` (``widths`` default
        (256, 256), ``activation``, ``dropout``, ``residual``).

    ``estimate(cond (B, cond_dim))`` gives ``{rule: {statistic: (B, ..., dim)}}`` in the
    network's standardized space; :class:`~amortized.ScoringRuleApproximator` maps them to
    the original space. With an :class:`~amortized.scoring_rules.MvNormalScore` among the
    rules, ``sample`` and ``log_prob`` are that normal's.

    Examples
    --------
    >>> from amortized.scoring_rules import MeanScore, QuantileScore
    >>> net = bf.networks.ScoringRuleNetwork(
    ...     scoring_rules={"mean": MeanScore(), "quantiles": QuantileScore(q=[0.1, 0.9])})
    >>> net = net.build(2, 3, jax.random.key(0))
    >>> est = net.estimate(jnp.zeros((4, 3)))
    >>> est["quantiles"]["value"].shape
    (4, 2, 2)
    """

    mlp: MLP | None
    rules_json: str = eqx.field(static=True)

    @strict
    def __init__(
        self,
        scoring_rules: Mapping[str, Any] | None = None,
        subnet_kwargs: Mapping[str, Any] | None = None,
        dim: int = 0,
        cond_dim: int = 0,
        key: jax.Array | None = None,
        layout: tuple | None = None,
    ):
        rules = _rules("ScoringRuleNetwork", scoring_rules)
        sub = {"widths": (256, 256)} | strict_kwargs(
            "ScoringRuleNetwork(subnet_kwargs)", subnet_kwargs, MLP_OPTIONS
        )
        sub["widths"] = list(sub["widths"])
        stored = {name: sr.rule_config(rule) for name, rule in rules.items()}
        self.rules_json = encode_config(**stored)
        self.config_json = encode_config(scoring_rules=stored, subnet_kwargs=sub)
        self.dim, self.cond_dim = int(dim), int(cond_dim)
        if layout is not None:
            raise ValueError(
                "ScoringRuleNetwork: image-valued targets are not supported; return them "
                "flat, (batch, H * W * C), from the simulator, or use a generative network"
            )
        self.layout = None
        if self.dim == 0:
            self.mlp = None
            return
        if key is None:
            raise ValueError("ScoringRuleNetwork: building needs a PRNG key")
        size = sum(sum(r.head_sizes(self.dim).values()) for r in rules.values())
        self.mlp = MLP(max(self.cond_dim, 1), size, key=key, **sub)

    @property
    def scoring_rules(self) -> dict[str, sr.ScoringRule]:
        return _rules("ScoringRuleNetwork", self.config["scoring_rules"])

    @property
    def parametric_rule(self) -> str | None:
        """The first rule with a density (its ``sample`` / ``log_prob``), or None."""
        return next((n for n, r in self.scoring_rules.items() if r.parametric), None)

    @property
    def has_log_prob(self) -> bool:  # type: ignore[override]
        return self.parametric_rule is not None

    @property
    def log_prob_caveat(self) -> str | None:
        if self.parametric_rule is None:
            return (
                "ScoringRuleNetwork has no density: its rules estimate point statistics "
                "(means, quantiles); add an MvNormalScore for a parametric posterior"
            )
        return None

    # -- statistics --------------------------------------------------------------------
    def _inputs(self, cond: jax.Array) -> jax.Array:
        # an unconditional estimator sees a constant input
        return cond if self.cond_dim else jnp.ones((cond.shape[0], 1))

    def _split(self, raw: jax.Array) -> dict[str, dict[str, jax.Array]]:
        out, start = {}, 0
        for name, rule in self.scoring_rules.items():
            heads = {}
            for head, size in rule.head_sizes(self.dim).items():
                heads[head] = raw[:, start : start + size]
                start += size
            out[name] = rule.statistics(heads, self.dim)
        return out

    def estimate(self, cond: jax.Array) -> dict[str, dict[str, jax.Array]]:
        """``{rule: {statistic: (B, ..., dim)}}`` for conditions ``(B, cond_dim)``, in the
        standardized space the network was trained in."""
        self._require_built("estimate")
        return self._split(self.mlp.rows(self._inputs(cond)))

    def loss(self, x, cond, key, train=True, step=None):
        self._require_built("loss")
        inputs = self._inputs(cond)
        if train:
            raw = self.mlp.train_rows(inputs, split_dropout_key(key, x.shape[0]))
        else:
            raw = self.mlp.rows(inputs)
        stats = self._split(raw)
        rules = self.scoring_rules
        return sum(jnp.mean(rules[n].score(stats[n], x)) for n in rules)

    # -- the parametric rule's distribution ---------------------------------------------
    def _parametric(self, what: str) -> str:
        self._require_built(what)
        name = self.parametric_rule
        if name is None:
            raise NotImplementedError(
                f"ScoringRuleNetwork.{what}: ScoringRuleNetwork has no density or draws; its "
                f"rules ({', '.join(self.scoring_rules)}) estimate point statistics. Use "
                f"estimate(), or add an MvNormalScore to the rules"
            )
        return name

    def log_prob(self, x, cond):
        name = self._parametric("log_prob")
        return self.scoring_rules[name].log_prob(self.estimate(cond)[name], x)

    def sample(self, key, cond):
        name = self._parametric("sample")
        return self.scoring_rules[name].sample(self.estimate(cond)[name], key)


@strict
def PointNetwork(  # noqa: N802 (a class in BayesFlow; here a factory of ScoringRuleNetwork)
    statistics: str | Sequence[str] = "mean",
    q: Sequence[float] | None = None,
    subnet_kwargs: Mapping[str, Any] | None = None,
) -> ScoringRuleNetwork:
    """The common point estimates by name (guide 6.7.2): ``"mean"``, ``"median"``,
    ``"quantiles"`` (at levels ``q``, default 0.1, 0.5, 0.9), one or a list; a
    :class:`ScoringRuleNetwork` whose rules are named after the statistics.

    >>> net = bf.networks.PointNetwork(["mean", "quantiles"], q=[0.05, 0.5, 0.95])
    >>> sorted(net.scoring_rules)
    ['mean', 'quantiles']
    """
    names = [statistics] if isinstance(statistics, str) else list(statistics)
    unknown = [n for n in names if n not in POINT_STATISTICS]
    if not names or unknown:
        raise ValueError(
            f"PointNetwork: statistics must be among {sorted(POINT_STATISTICS)}, got {statistics!r}"
        )
    if q is not None and "quantiles" not in names:
        raise ValueError(f"PointNetwork: q={q!r} is given but 'quantiles' is not estimated")
    quantiles = sr.QuantileScore() if q is None else sr.QuantileScore(q=q)
    rules = {n: (quantiles if n == "quantiles" else POINT_STATISTICS[n]()) for n in names}
    return ScoringRuleNetwork(scoring_rules=rules, subnet_kwargs=subnet_kwargs)
