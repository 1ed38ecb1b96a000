"""ModelComparisonApproximator: posterior model probabilities and Bayes factors.

A classifier ``f(x)`` trained with a strictly proper categorical scoring rule on
simulations ``(x, m)``, ``m ~ p_train``, learns the posterior model probabilities under the
training frequencies: ``softmax(f(x))_k = p_train(k) p(x | M_k) / sum_j p_train(j) p(x | M_j)``.
Hence, for each dataset,

- log Bayes factors against model 0, free of any prior:
  ``log BF_k0 = log p(x | M_k) - log p(x | M_0) = (f_k - log p_train(k)) - (f_0 - log p_train(0))``;
- posterior model probabilities under any prior ``pi``: ``softmax(log BF_k0 + log pi_k)``
  (the training frequencies by default).

The training frequencies are the simulator's ``p`` when a workflow trains on a
:class:`~amortized.simulators.ModelComparisonSimulator` online, and the label frequencies of
the training data otherwise; a softmax read as probabilities under another prior would be a
quiet wrong answer, so the frequencies are stored with the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import scoring_rules as sr
from .._validation import strict
from ..networks.scoring_rule_network import ScoringRuleNetwork
from .classifier import WithoutDraws, check_classifier_options
from .core import IV
from .scoring_rule import ScoringRuleApproximator


def _categorical_rules(rules: Any) -> dict[str, sr.ScoringRule]:
    if rules is None:
        return {"model": sr.CrossEntropyScore()}
    if isinstance(rules, sr.ScoringRule):
        rules = {"model": rules}
    if not isinstance(rules, Mapping) or not rules:
        raise TypeError(
            f"ModelComparisonApproximator: scoring_rules must be a categorical rule "
            f"(bf.scoring_rules.CrossEntropyScore(), BrierScore()) or a dict of them, got "
            f"{rules!r}"
        )
    for name, rule in rules.items():
        if not getattr(rule, "categorical", False):
            raise TypeError(
                f"ModelComparisonApproximator: scoring_rules[{name!r}] must be a categorical "
                f"rule (CrossEntropyScore, BrierScore), got {rule!r}"
            )
    return dict(rules)


class ModelComparisonApproximator(WithoutDraws, ScoringRuleApproximator):
    """Amortized Bayesian model comparison: ``estimate`` gives each dataset's posterior
    model probabilities and log Bayes factors.

    Parameters
    ----------
    num_models : int
        Number of models; the targets (``"model_indices"`` routed to
        ``inference_variables``) are one-hot rows of this length, never standardized.
    classifier_network : dict, optional
        Options of the classifier :class:`~amortized.networks.MLP` on the conditions and
        learned summaries (``widths`` default (256, 256), ``activation``, ``dropout``,
        ``residual``).
    summary_network, adapter, standardize
        As in :class:`~amortized.ContinuousApproximator` (``standardize`` applies to the
        conditions and summary variables).
    scoring_rules : categorical rule or dict of them, default CrossEntropyScore()
    model_names : sequence of str, optional
        Names for tables and figures (default ``"M0"``, ``"M1"``, ...).

    Examples
    --------
    >>> m0 = bf.make_simulator([lambda: {"mu": 0.0},
    ...                         lambda mu: {"x": mu + np.random.normal(size=3)}])
    >>> m1 = bf.make_simulator([lambda: {"mu": 2 * np.random.normal()},
    ...                         lambda mu: {"x": mu + np.random.normal(size=3)}])
    >>> sim = bf.simulators.ModelComparisonSimulator([m0, m1])
    >>> approx = bf.approximators.ModelComparisonApproximator(
    ...     num_models=2, adapter=bf.Adapter.create_default("model_indices", "x"))
    >>> _ = approx.fit(dataset=sim.sample(512, seed=0), epochs=2, batch_size=64, seed=1,
    ...                progress=False)
    >>> est = approx.estimate({"x": np.zeros((4, 3))})
    >>> est["model_probs"].shape, est["log_bayes_factors"].shape
    ((4, 2), (4, 2))
    """

    _categorical_targets = True
    #: one-hot labels are not regressed on the conditions
    default_regression_adjustment = False
    no_draws_reason = (
        "a model comparison approximator estimates posterior model probabilities and Bayes "
        "factors (estimate, predict); it has no posterior of parameters to draw from or "
        "evaluate. Train a BasicWorkflow per model for that"
    )

    @strict
    def __init__(
        self,
        num_models: int,
        classifier_network: Mapping[str, Any] | None = None,
        summary_network: Any = None,
        adapter: Any = None,
        standardize: str | Sequence[str] | None = "all",
        scoring_rules: Any = None,
        model_names: Sequence[str] | None = None,
    ):
        if isinstance(num_models, bool) or not isinstance(num_models, int) or num_models < 2:
            raise ValueError(
                f"ModelComparisonApproximator: num_models must be an integer >= 2, got "
                f"{num_models!r}"
            )
        check_classifier_options("ModelComparisonApproximator", classifier_network)
        keys = [standardize] if isinstance(standardize, str) else list(standardize or [])
        if IV in keys:
            raise ValueError(
                "ModelComparisonApproximator: the model indices (inference_variables) are "
                "one-hot labels and are never standardized; standardize the conditions "
                "('inference_conditions', 'summary_variables' or 'all')"
            )
        network = ScoringRuleNetwork(
            scoring_rules=_categorical_rules(scoring_rules), subnet_kwargs=classifier_network
        )
        super().__init__(
            inference_network=network,
            summary_network=summary_network,
            adapter=adapter,
            standardize=standardize,
        )
        self.standardize_keys = [k for k in self.standardize_keys if k != IV]
        self.num_models = num_models
        names = [f"M{k}" for k in range(num_models)] if model_names is None else model_names
        self.model_names = [str(n) for n in names]
        if len(self.model_names) != num_models or len(set(self.model_names)) != num_models:
            raise ValueError(
                f"ModelComparisonApproximator: model_names must be {num_models} distinct "
                f"names, got {model_names!r}"
            )
        #: the frequencies of the models in training, divided out of the Bayes factors
        self.model_prior: np.ndarray | None = None

    # -- saving ------------------------------------------------------------------------
    def saved_state(self) -> dict[str, Any]:
        return {
            "num_models": self.num_models,
            "model_names": self.model_names,
            "model_prior": None if self.model_prior is None else self.model_prior.tolist(),
        }

    @classmethod
    def from_parts(cls, network, summary_network, adapter, standardize, state):
        approx = cls(
            num_models=int(state["num_models"]),
            summary_network=summary_network,
            adapter=adapter,
            standardize=standardize,
            scoring_rules=network.scoring_rules,
            model_names=state["model_names"],
            classifier_network=network.config["subnet_kwargs"],
        )
        if state.get("model_prior") is not None:
            approx.model_prior = np.asarray(state["model_prior"], np.float64)
        return approx

    # -- training data -----------------------------------------------------------------
    def _network_arrays(self, adapted, need_variables, where):
        out = super()._network_arrays(adapted, need_variables, where)
        if IV in out:
            labels = np.asarray(out[IV])
            if labels.ndim != 2 or labels.shape[1] != self.num_models:
                raise ValueError(
                    f"{where}: 'inference_variables' must be one-hot model indices of shape "
                    f"(batch, {self.num_models}), got {labels.shape}; route the "
                    f"ModelComparisonSimulator's 'model_indices' there"
                )
            if not (np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(axis=1) == 1)):
                bad = int(
                    np.argmax(~(((labels == 0) | (labels == 1)).all(1) & (labels.sum(1) == 1)))
                )
                raise ValueError(
                    f"{where}: 'inference_variables' must be one-hot model indices (a single "
                    f"1 per row); row {bad} is {labels[bad].tolist()}"
                )
        return out

    def _check_training_keys(self, data: Mapping[str, Any]) -> list[str]:
        keys = super()._check_training_keys(data)
        adapted = self.adapter.forward(data) if self.adapter is not None else dict(data)
        counts = np.asarray(adapted[IV], np.float64).reshape(-1, self.num_models).sum(axis=0)
        if np.any(counts == 0):
            missing = [self.model_names[k] for k in np.flatnonzero(counts == 0)]
            raise ValueError(
                f"fit: model(s) {missing} never occur in the training data; a classifier "
                f"cannot learn their probabilities"
            )
        if self.model_prior is None:
            self.model_prior = counts / counts.sum()
        return keys

    # -- estimates ---------------------------------------------------------------------
    @strict
    def estimate(
        self, conditions: Mapping[str, Any], model_prior: Sequence[float] | None = None
    ) -> dict[str, Any]:
        """Per dataset in ``conditions``:

        - ``"model_probs"`` ``(num_datasets, num_models)``: posterior model probabilities
          under ``model_prior`` (default: the models' training frequencies);
        - ``"log_bayes_factors"`` ``(num_datasets, num_models)``: ``log p(x | M_k) -
          log p(x | M_0)`` (column 0 is zero), free of the training frequencies;
        - ``"log_posterior_odds"``: the same against model 0 with the prior included;
        - ``"logits"``: the classifier's raw output.

        With several scoring rules, ``{rule name: the above}``."""
        raw, _ = self._raw_estimates(conditions)
        log_prior = np.log(self._prior(model_prior))
        out = {
            name: model_probabilities(
                np.asarray(raw[name]["logits"], np.float64), np.log(self.model_prior), log_prior
            )
            for name in raw
        }
        return next(iter(out.values())) if len(out) == 1 else out

    @strict
    def predict(self, conditions: Mapping[str, Any], logits: bool = False) -> np.ndarray:
        """BayesFlow 2.0's call: posterior model probabilities ``(num_datasets,
        num_models)`` under the training frequencies, or the classifier's logits."""
        est = self.estimate(conditions)
        if "model_probs" not in est:
            est = next(iter(est.values()))
        return est["logits"] if logits else est["model_probs"]

    def _prior(self, model_prior) -> np.ndarray:
        if model_prior is None:
            return self.model_prior
        p = np.asarray(model_prior, np.float64)
        if p.shape != (self.num_models,) or np.any(p <= 0) or not np.isclose(p.sum(), 1):
            raise ValueError(
                f"estimate: model_prior must be {self.num_models} positive probabilities "
                f"summing to 1, got {model_prior!r}"
            )
        return p / p.sum()

    # -- what a classifier has not ----------------------------------------------------
    @property
    def log_prob_caveat(self) -> str | None:
        return "ModelComparisonApproximator estimates model probabilities, not a density"


def model_probabilities(
    logits: np.ndarray, log_train_prior: np.ndarray, log_prior: np.ndarray
) -> dict[str, np.ndarray]:
    """A classifier's ``logits (n, K)`` trained under model frequencies
    ``exp(log_train_prior)`` to Bayes factors and posterior probabilities under
    ``exp(log_prior)`` (see the module docstring).

    >>> out = model_probabilities(np.log([[0.8, 0.2]]), np.log([0.5, 0.5]), np.log([0.5, 0.5]))
    >>> out["model_probs"].round(3).tolist(), out["log_bayes_factors"].round(3).tolist()
    ([[0.8, 0.2]], [[0.0, -1.386]])
    """
    log_ml = logits - log_train_prior  # log p(x | M_k) + a constant per dataset
    log_bf = log_ml - log_ml[:, :1]
    log_post = log_bf + log_prior
    log_post = log_post - np.logaddexp.reduce(log_post, axis=1, keepdims=True)
    return {
        "model_probs": np.exp(log_post),
        "log_bayes_factors": log_bf,
        "log_posterior_odds": log_post - log_post[:, :1],
        "logits": logits,
    }
