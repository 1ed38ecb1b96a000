"""ModelComparisonWorkflow: train a model comparison classifier on simulations and use it.

The sequence is :class:`~amortized.BasicWorkflow`'s (simulate, ``fit_offline`` /
``fit_online`` with early stopping, ``save`` / ``load``); the estimator is a
:class:`~amortized.approximators.ModelComparisonApproximator` and the diagnostics are those
of predicted model probabilities (:mod:`amortized.diagnostics.model_comparison`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import diagnostics
from .._validation import check_positive_int, strict
from ..adapters import Adapter
from ..adapters.usage import head_rows, key_routes
from ..approximators import ModelComparisonApproximator
from ..approximators.core import IV
from ..simulators import ModelComparisonSimulator
from .basic import BasicWorkflow, _stream


class ModelComparisonWorkflow(BasicWorkflow):
    """Amortized Bayesian model comparison (Radev et al. 2021): posterior model
    probabilities and Bayes factors for any number of datasets.

    Parameters
    ----------
    simulator : ModelComparisonSimulator, optional
        Its ``"model_indices"`` are the targets; needed for ``fit_online`` and for
        simulated test data.
    adapter : Adapter, optional
        Built from ``inference_conditions`` / ``summary_variables`` (and ``summary_mask``)
        with ``"model_indices"`` as the targets when not given.
    num_models : int, optional
        Default: the simulator's number of models.
    classifier_network : dict, optional
        Options of the classifier MLP (see
        :class:`~amortized.approximators.ModelComparisonApproximator`).
    summary_network, scoring_rules, model_names, initial_learning_rate, optimizer,
    standardize
        As in :class:`~amortized.approximators.ModelComparisonApproximator` and
        :class:`~amortized.BasicWorkflow`.

    Examples
    --------
    >>> m0 = bf.make_simulator([lambda: {"mu": 0.0},
    ...                         lambda mu: {"x": mu + np.random.normal(size=4)}])
    >>> m1 = bf.make_simulator([lambda: {"mu": 2 * np.random.normal()},
    ...                         lambda mu: {"x": mu + np.random.normal(size=4)}])
    >>> wf = bf.ModelComparisonWorkflow(
    ...     simulator=bf.simulators.ModelComparisonSimulator([m0, m1], key_conflicts="drop"),
    ...     inference_conditions="x")
    >>> _ = wf.fit_online(epochs=2, num_batches_per_epoch=8, batch_size=64, seed=0,
    ...                   progress=False)
    >>> wf.estimate({"x": np.zeros((3, 4))})["model_probs"].shape
    (3, 2)
    """

    @strict
    def __init__(
        self,
        simulator: ModelComparisonSimulator | None = None,
        adapter: Adapter | None = None,
        num_models: int | None = None,
        classifier_network: Mapping[str, Any] | None = None,
        summary_network: Any = None,
        scoring_rules: Any = None,
        model_names: Sequence[str] | None = None,
        initial_learning_rate: float = 5e-4,
        optimizer: Any = None,
        inference_conditions: str | Sequence[str] | None = None,
        summary_variables: str | Sequence[str] | None = None,
        summary_mask: str | None = None,
        standardize: str | Sequence[str] | None = "all",
    ):
        if simulator is not None and not isinstance(simulator, ModelComparisonSimulator):
            raise TypeError(
                f"ModelComparisonWorkflow: simulator must be a "
                f"bf.simulators.ModelComparisonSimulator([...]), got {type(simulator).__name__}"
            )
        if num_models is None:
            if simulator is None:
                raise ValueError("ModelComparisonWorkflow: give a simulator or num_models")
            num_models = simulator.num_models
        elif simulator is not None and num_models != simulator.num_models:
            raise ValueError(
                f"ModelComparisonWorkflow: num_models={num_models} but the simulator has "
                f"{simulator.num_models} models"
            )
        names_given = any(
            v is not None for v in (inference_conditions, summary_variables, summary_mask)
        )
        if adapter is None:
            if not names_given:
                raise ValueError(
                    "ModelComparisonWorkflow: give an adapter, or name the data the "
                    "classifier sees (inference_conditions and/or summary_variables)"
                )
            adapter = Adapter.create_default(
                "model_indices", inference_conditions, summary_variables, summary_mask
            )
        elif names_given:
            raise ValueError(
                "ModelComparisonWorkflow: give either an adapter or variable names, not both"
            )
        self._set_up(simulator, initial_learning_rate, optimizer)
        self.approximator = ModelComparisonApproximator(
            num_models=num_models,
            classifier_network=classifier_network,
            summary_network=summary_network,
            adapter=adapter,
            standardize=standardize,
            scoring_rules=scoring_rules,
            model_names=model_names,
        )

    @property
    def model_names(self) -> list[str]:
        return self.approximator.model_names

    def _fit(self, source, validation_data, seed, **settings):
        # online, the training frequencies are the simulator's p exactly (offline: the
        # label frequencies of the data, which is what the classifier then learns)
        if "simulate" in source and self.approximator.model_prior is None:
            self.approximator.model_prior = np.asarray(self.simulator.p, np.float64)
        return super()._fit(source, validation_data, seed, **settings)

    # -- estimates ---------------------------------------------------------------------
    @strict
    def estimate(
        self, conditions: Mapping[str, Any], model_prior: Sequence[float] | None = None
    ) -> dict[str, Any]:
        """Posterior model probabilities, log Bayes factors and log posterior odds per
        dataset (see :meth:`ModelComparisonApproximator.estimate`)."""
        return self.approximator.estimate(conditions, model_prior=model_prior)

    @strict
    def predict(self, conditions: Mapping[str, Any], logits: bool = False) -> np.ndarray:
        """Posterior model probabilities ``(num_datasets, num_models)`` (or logits)."""
        return self.approximator.predict(conditions, logits=logits)

    # -- diagnostics -------------------------------------------------------------------
    def _held_out_models(self, where: str, test_data, seed):
        """Predicted probabilities and true one-hot models of held-out simulations."""
        if not isinstance(test_data, Mapping):
            n = check_positive_int(where, "test_data (a number of simulations)", test_data)
            test_data = self._simulate_for_training(n, _stream(seed, "held_out"), 64)
        routes = key_routes(self.adapter, head_rows(test_data))
        targets = self.adapter.forward(dict(test_data), strict=False).get(IV)
        if targets is None:
            raise KeyError(
                f"{where}: test_data lacks the true models (the adapter routes nothing to "
                f"'inference_variables'; the simulator's 'model_indices'); keys given: "
                f"{sorted(test_data)}"
            )
        conditions = {k: v for k, v in test_data.items() if routes.get(k, set()) - {IV, "dropped"}}
        probs = self.approximator.estimate(conditions)
        if "model_probs" not in probs:
            probs = next(iter(probs.values()))
        return probs["model_probs"], np.asarray(targets)

    @strict
    def compute_default_diagnostics(
        self, test_data: Mapping[str, Any] | int, num_bins: int = 10, seed: int | None = None
    ):
        """Accuracy, expected calibration error, Brier score and log loss per true model on
        held-out simulations ``test_data`` (a dict with the true ``model_indices``, or a
        number of fresh simulations): a DataFrame (rows: metrics; columns: models and
        ``"all"``; the confusion matrix in ``attrs``). The held-out models should follow
        the training frequencies, under which the probabilities are calibrated."""
        probs, targets = self._held_out_models("compute_default_diagnostics", test_data, seed)
        return diagnostics.model_comparison_diagnostics(probs, targets, self.model_names, num_bins)

    @strict
    def plot_default_diagnostics(
        self, test_data: Mapping[str, Any] | int, num_bins: int = 10, seed: int | None = None
    ) -> dict:
        """``{"losses", "calibration", "confusion_matrix"}`` as matplotlib Figures."""
        probs, targets = self._held_out_models("plot_default_diagnostics", test_data, seed)
        return self._figures(probs, targets, num_bins)

    def _figures(self, probs, targets, num_bins) -> dict:
        plots = diagnostics.plots
        return {
            "losses": plots.loss(self.history or {"loss": [float("nan")]}),
            "calibration": plots.mc_calibration(probs, targets, self.model_names, num_bins),
            "confusion_matrix": plots.mc_confusion_matrix(probs, targets, self.model_names),
        }

    @strict
    def report(
        self,
        path: str | os.PathLike,
        test_data: Mapping[str, Any] | int = 1000,
        num_bins: int = 10,
        configuration: Mapping[str, Any] | None = None,
        title: str = "Model comparison report",
        seed: int | None = None,
    ) -> Path:
        """Diagnose on ``test_data`` (default: 1000 fresh simulations) and write the report
        folder ``path``: ``loss.png``, ``calibration.png``, ``confusion_matrix.png``,
        ``metrics.csv``, ``history.json`` and ``report.md`` / ``.json`` / ``.html`` with a
        rating of each model's calibration and next steps."""
        probs, targets = self._held_out_models("report", test_data, seed)
        table = diagnostics.model_comparison_diagnostics(probs, targets, self.model_names, num_bins)
        figs = self._figures(probs, targets, num_bins)
        figs["loss"] = figs.pop("losses")
        config = self._configuration()
        config["models"] = ", ".join(self.model_names)
        config["training frequencies of the models"] = ", ".join(
            f"{p:.3f}" for p in self.approximator.model_prior
        )
        config["test datasets"] = int(table.attrs["num_datasets"])
        config.update(dict(configuration or {}))
        history = self.history or None
        rep = diagnostics.model_comparison_report(table, history, config, title=title)
        return diagnostics.write_report(path, rep, figs, table, history)

    @classmethod
    def load(cls, path, simulator=None):
        """Load a workflow saved with :meth:`save`."""
        wf = super().load(path, simulator=simulator)
        if not isinstance(wf.approximator, ModelComparisonApproximator):
            raise TypeError(
                f"ModelComparisonWorkflow.load: {path} holds a "
                f"{type(wf.approximator).__name__}, not a model comparison approximator; "
                f"load it with bf.load"
            )
        return wf
