"""BasicWorkflow: simulator + adapter + approximator, with the calls a modeller uses.

>>> workflow = BasicWorkflow(
...     simulator=bf.simulators.benchmarks.two_moons(),
...     inference_network=bf.networks.CouplingFlow(depth=2),
...     inference_variables=["theta"], inference_conditions=["x"])
>>> history = workflow.fit_offline(workflow.simulate(1_000, seed=1), epochs=2,
...                                batch_size=128, seed=2, progress=False)
>>> x_obs = np.zeros((1, 2))
>>> draws = workflow.sample(conditions={"x": x_obs}, num_samples=1000, seed=3)
>>> draws["theta"].shape
(1, 1000, 2)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import diagnostics
from .._random import stream_seeds
from .._validation import check_positive_int, strict
from ..adapters import Adapter
from ..adapters.usage import head_rows, key_routes
from ..approximators import ContinuousApproximator, RatioApproximator, ScoringRuleApproximator
from ..approximators.self_consistency import SelfConsistency
from ..approximators.self_consistency import prepare as prepare_self_consistency
from ..approximators.serialization import load_approximator, save_approximator
from ..networks import (
    CouplingFlow,
    DiffusionModel,
    FlowMatching,
    InferenceNetwork,
    RatioNetwork,
    ScoringRuleNetwork,
    StableConsistencyModel,
)
from ..simulators import Simulator
from ..simulators._density_model import DensityModel
from ..simulators.multiverse import CONTEXT as MULTIVERSE

NETWORK_NAMES = {
    "coupling_flow": CouplingFlow,
    "diffusion_model": DiffusionModel,
    "flow_matching": FlowMatching,
    "stable_consistency_model": StableConsistencyModel,
}


#: fit_offline's cap on epochs under early stopping (the stopping rule ends training long
#: before it on the models measured in BENCHMARKS.md), and its epochs without.
DEFAULT_MAX_EPOCHS = 1000
DEFAULT_EPOCHS = 100


# simulations a workflow makes besides the training data, each from its own stream of the
# call's seed (a fit's validation simulations, held-out simulations for diagnostics)
# a new purpose goes last: child seeds are prefix-stable, so the others keep their seeds
SIMULATION_STREAMS = ("validation", "held_out", "self_consistency")


def _stream(seed: int | None, name: str) -> int | None:
    return None if seed is None else stream_seeds(seed, SIMULATION_STREAMS)[name]


def _resolve_network(net: InferenceNetwork | str | None) -> InferenceNetwork:
    if net is None:
        return CouplingFlow()
    if isinstance(net, str):
        if net == "consistency_model":
            raise ValueError(
                "BasicWorkflow: inference_network='consistency_model' needs total_steps "
                "(epochs x batches per epoch); pass bf.networks.ConsistencyModel("
                "total_steps=...), or 'stable_consistency_model', which needs none"
            )
        if net not in NETWORK_NAMES:
            raise ValueError(
                f"BasicWorkflow: inference_network name must be one of "
                f"{sorted(NETWORK_NAMES)}, got {net!r}"
            )
        return NETWORK_NAMES[net]()
    return net


def resolve_model(
    where: str,
    simulator,
    adapter: Adapter | None,
    inference_variables,
    inference_conditions,
    summary_variables,
    summary_mask,
) -> tuple[DensityModel | None, Simulator | None, Adapter]:
    """A workflow's model, simulator and adapter from what it was given: a model with a
    likelihood (returned first, else None) stands for its prior predictive simulator (and
    gives its default adapter when neither an adapter nor variable names are given); the
    adapter is given or built from names."""
    names = (inference_variables, inference_conditions, summary_variables, summary_mask)
    names_given = any(v is not None for v in names)
    model = simulator if isinstance(simulator, DensityModel) else None
    if model is not None:
        if adapter is None and not names_given:
            adapter = simulator.default_adapter()
        simulator = simulator.simulator
    if simulator is not None and not isinstance(simulator, Simulator):
        raise TypeError(
            f"{where}: simulator must come from bf.make_simulator (or be a "
            f"bf.NumPyroModel / bf.LikelihoodModel), got {type(simulator).__name__}"
        )
    if adapter is None:
        if inference_variables is None:
            raise ValueError(
                f"{where}: give an adapter, or name the inference_variables (and "
                f"inference_conditions / summary_variables) to build the default one"
            )
        return model, simulator, Adapter.create_default(*names)
    if names_given:
        raise ValueError(f"{where}: give either an adapter or variable names, not both")
    return model, simulator, adapter


class BasicWorkflow:
    """Train an amortized posterior on simulations and use it.

    Parameters
    ----------
    simulator : Simulator, NumPyroModel or LikelihoodModel, optional
        Needed for ``simulate`` and ``fit_online``. A model with a likelihood stands for
        its prior predictive simulator (``model.simulator``), and without an adapter or
        variable names its ``default_adapter()`` is used.
    adapter : Adapter, optional
        Built from ``inference_variables`` / ``inference_conditions`` /
        ``summary_variables`` when not given.
    inference_network : InferenceNetwork or str, default CouplingFlow()
        A network, or one of the names "coupling_flow", "diffusion_model",
        "flow_matching", "stable_consistency_model" (its defaults).
    summary_network : SummaryNetwork, optional
        E.g. ``bf.networks.SetTransformer()`` for exchangeable data routed to
        ``summary_variables``.
    initial_learning_rate : float, default 5e-4
        Peak learning rate of the default AdamW warmup-cosine schedule.
    optimizer : optax.GradientTransformation, optional
        Replaces the default optimizer (:func:`~amortized.training.default_optimizer`:
        AdamW, warmup-cosine, clipping, and the moving average of the weights as the
        networks validated and returned). A user's optimizer whose chain ends with
        :func:`~amortized.training.optimizer.track_average` gets the average too;
        ``default_optimizer(..., average_decay=0)`` is the default without it.
    inference_variables, inference_conditions, summary_variables : str or list of str
        Simulator output names for the default adapter.
    summary_mask : str, optional
        Name of a ``(batch, N)`` 0/1 output marking the observed rows of padded sets or
        series (datasets of different sizes in one batch); padded rows are ignored by the
        summary network and by the standardization statistics.
    standardize : "all", None or network key(s), default "all"
        Learned standardization of network inputs (see ContinuousApproximator).
    regression_adjustment : bool, optional
        Regress the targets linearly on the direct conditions before training (see
        ContinuousApproximator); default: the approximator's (on for point estimators),
        and on for a :class:`~amortized.sensitivity.Multiverse`'s simulator, whose
        universes the adjustment fits one by one (the universe code's columns take two
        values each; in a conjugate universe the fit is then the exact posterior's mean
        and sd, and the network learns only what is not linear).
    """

    @strict
    def __init__(
        self,
        simulator: Simulator | None = None,
        adapter: Adapter | None = None,
        inference_network: InferenceNetwork | str | None = None,
        summary_network: Any = None,
        initial_learning_rate: float = 5e-4,
        optimizer: Any = None,
        inference_variables: str | Sequence[str] | None = None,
        inference_conditions: str | Sequence[str] | None = None,
        summary_variables: str | Sequence[str] | None = None,
        summary_mask: str | None = None,
        standardize: str | Sequence[str] | None = "all",
        regression_adjustment: bool | None = None,
    ):
        #: the model with a likelihood the workflow was built from (None for a simulator)
        self.model, simulator, adapter = resolve_model(
            "BasicWorkflow",
            simulator,
            adapter,
            inference_variables,
            inference_conditions,
            summary_variables,
            summary_mask,
        )
        self._set_up(simulator, initial_learning_rate, optimizer)
        network = _resolve_network(inference_network)
        # point estimators (guide 6.7) get estimate(), ratio estimators log_ratio();
        # everything else is the same
        kind = ContinuousApproximator
        if isinstance(network, ScoringRuleNetwork):
            kind = ScoringRuleApproximator
        elif isinstance(network, RatioNetwork):
            kind = RatioApproximator
        state = {"regression_adjustment": regression_adjustment}
        self.approximator = kind.from_parts(network, summary_network, adapter, standardize, state)
        if regression_adjustment is None and MULTIVERSE in (
            getattr(simulator, "context", None) or {}
        ):
            self.approximator.regression_adjustment = True

    def _set_up(self, simulator, initial_learning_rate: float, optimizer) -> None:
        """The workflow's own state: simulator, training settings, metadata."""
        if initial_learning_rate <= 0:
            raise ValueError(
                f"{type(self).__name__}: initial_learning_rate must be positive, got "
                f"{initial_learning_rate}"
            )
        self.simulator = simulator
        self.metadata: dict[str, Any] = {}
        self.initial_learning_rate = float(initial_learning_rate)
        self.optimizer = optimizer

    @property
    def context(self) -> dict[str, Any] | None:
        """The context variables the networks were trained with (a power-scaled or
        multiverse simulator's signature), from the simulator or the saved model."""
        saved = getattr(self, "_saved_context", None)
        if saved is not None:
            return saved
        return getattr(self.simulator, "context", None)

    @property
    def adapter(self) -> Adapter:
        return self.approximator.adapter

    def _set_adapter(self, adapter: Adapter) -> None:
        self.approximator.adapter = adapter

    @property
    def inference_network(self) -> InferenceNetwork:
        return self.approximator.inference_network

    @property
    def history(self) -> dict[str, list]:
        return self.approximator.history

    @property
    def _validation_loss_ranks_epochs(self) -> bool:
        """Whether early stopping applies by default (see :meth:`fit_offline`)."""
        return self.approximator.validation_loss_ranks_epochs

    @property
    def _default_patience(self) -> int:
        """Early stopping's patience when the user gives none (the network's own)."""
        return self.inference_network.default_patience

    # -- simulation --------------------------------------------------------------------
    def _require_simulator(self, what: str) -> Simulator:
        if self.simulator is None:
            raise RuntimeError(
                f"BasicWorkflow.{what}: needs a simulator; pass "
                f"BasicWorkflow(simulator=bf.make_simulator([...]))"
            )
        return self.simulator

    def simulate(
        self, batch_shape: int | tuple[int, ...], seed: int | None = None, **kwargs: Any
    ) -> dict[str, np.ndarray]:
        """Simulate ``batch_shape`` datasets (see :meth:`Simulator.sample`)."""
        return self._require_simulator("simulate").sample(batch_shape, seed=seed, **kwargs)

    def simulate_adapted(self, batch_shape, seed: int | None = None, **kwargs):
        """Simulate and apply the adapter (network keys)."""
        return self.adapter.forward(self.simulate(batch_shape, seed=seed, **kwargs))

    def _simulate_for_training(self, n: int, seed, chunk_size: int) -> dict[str, np.ndarray]:
        """Fresh simulations; with a meta_fn, one meta draw per chunk of ``chunk_size``,
        padded with a mask (see Simulator.sample_ragged)."""
        sim = self._require_simulator("fit")
        if not sim.varies_per_call:
            return sim.sample(n, seed=seed)
        data = sim.sample_ragged(n, chunk_size=chunk_size, seed=seed)
        if "mask" in data:
            self._route_padding_mask(data)
        return data

    def _route_padding_mask(self, data: Mapping[str, np.ndarray]) -> None:
        """Datasets of different sizes are padded and their observed rows marked in
        ``data["mask"]``. An adapter written the BayesFlow way does not mention the mask;
        when the padded output reaches ``summary_variables`` with the mask's ``(batch, N)``
        leading shape, the mask is routed to ``summary_mask`` here (the adapter gains a
        ``rename("mask", "summary_mask")`` step, saved with the model), so padded rows
        never reach the summary network. Padding that reaches anything else (flat
        conditions) cannot be masked and raises."""
        routed = self.adapter.forward({k: v[:1] for k, v in data.items()}, strict=False)
        if "summary_mask" in routed:
            return
        sv = routed.get("summary_variables")
        mask = np.asarray(data["mask"])
        if sv is not None and not isinstance(sv, Mapping) and np.shape(sv)[1:2] == mask.shape[1:2]:
            self._set_adapter(self.adapter.copy().rename("mask", "summary_mask"))
            return
        varying = [k for k, v in data.items() if np.ndim(v) >= 2 and k != "mask"]
        raise ValueError(
            f"fit: the simulator's meta_fn changes the size of its outputs, so datasets are "
            f"padded and their observed rows marked in 'mask'; the padded outputs do not "
            f"reach 'summary_variables' as (batch, N, ...) sets, so the mask cannot be "
            f"routed for you. Route the varying outputs to a summary network and the mask "
            f"with BasicWorkflow(summary_mask='mask') (or Adapter.rename('mask', "
            f"'summary_mask')). Outputs: {varying}"
        )

    def _validation(self, validation_data, seed, batch_size=32):
        if validation_data is None or isinstance(validation_data, Mapping):
            return validation_data
        n = check_positive_int("fit", "validation_data (a number of simulations)", validation_data)
        return self._simulate_for_training(n, _stream(seed, "validation"), batch_size)

    # -- training ----------------------------------------------------------------------
    @strict
    def fit_offline(
        self,
        data: Mapping[str, Any],
        epochs: int | None = None,
        batch_size: int = 32,
        validation_data: Mapping[str, Any] | int | None = None,
        seed: int | None = None,
        restore_best: bool = False,
        progress: bool = True,
        mask_rate: float = 0.0,
        early_stopping: bool | None = None,
        patience: int | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
        self_consistency: SelfConsistency | None = None,
    ) -> dict[str, list]:
        """Train on a fixed set of simulations ``data`` (a dict of arrays, batch leading).

        ``validation_data`` is a dict or a number of fresh simulations. ``mask_rate`` hides
        that fraction of set / series rows at each step (learning to handle missing
        observations). ``self_consistency``: a :class:`~amortized.SelfConsistency` adds the
        spread of log p(theta, y) - log q(theta | y) over posterior draws to the loss, on
        unlabeled observed datasets or fresh simulations (a workflow built from a model
        with a likelihood; also for ``fit_online`` and ``fit_disk``). Returns the history
        ``{"loss": [...], "val_loss": [...], "best_epoch", "last_improvement",
        "stopped_epoch", ...}``.

        Early stopping (default on): a network trained on a fixed set of simulations
        starts to memorize them after some epochs (the held-out loss then rises while the
        training loss falls), and which epoch that is depends on the model, the budget and
        the networks, so the stopping rule ends training, not ``epochs``: when the
        validation loss has not reached a new minimum for a third of ``patience`` epochs
        the learning rate is lowered (by 5x, at most three times), after ``patience``
        epochs (default: the network's ``default_patience``, 10; 50 for flow matching and
        diffusion models, whose losses are mostly noise and whose validation losses
        average 16 draws per example: :class:`~amortized.networks.base.RandomDrawLoss`)
        without an improvement beyond chance (by more than two standard errors of the
        per-example differences) training stops once the loss is
        rising or the rate is at its floor (a plateau above it lowers the rate first),
        and the best epoch's networks are kept when they beat the last epoch's on the
        held-out examples by more than two standard errors, Bonferroni-corrected for the
        number of epochs compared (else the last epoch's: the lowest of many noisy losses
        is partly luck; :func:`amortized.training.stopping.selection_z`).
        ``epochs`` is then a cap (default ``DEFAULT_MAX_EPOCHS`` = 1000). Without
        ``validation_data``, 5% of ``data`` (at least min(100, n / 5) simulations) is held
        out for that loss and not trained on (the history's ``"held_out"`` says how
        many).

        ``early_stopping=False``: exactly ``epochs`` epochs (default 100) on a
        warm-up-cosine schedule, all of ``data`` trained on; ``restore_best=True`` then
        keeps the epoch with the lowest ``validation_data`` loss. ``None`` (the default):
        early stopping where the network's validation loss ranks posteriors
        (``validation_loss_ranks_epochs``), fixed epochs otherwise (consistency models,
        whose loss measures the consistency of the map, not the posterior's fit).
        """
        if not isinstance(data, Mapping):
            raise TypeError(
                f"fit_offline: data must be a dict of arrays, got {type(data).__name__}"
            )
        return self._fit_fixed_set(
            "fit_offline",
            dict(dataset=data),
            validation_data,
            seed,
            epochs,
            early_stopping,
            patience,
            batch_size=batch_size,
            restore_best=restore_best,
            progress=progress,
            mask_rate=mask_rate,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume=resume,
            self_consistency=self_consistency,
        )

    def _fit_fixed_set(
        self, where, source, validation_data, seed, epochs, early_stopping, patience, **settings
    ):
        """Training on a fixed set of simulations (in memory or on disk): early stopping
        by default where the validation loss ranks posteriors, and the epochs it implies."""
        if early_stopping is not None and not isinstance(early_stopping, bool):
            raise TypeError(
                f"{where}: early_stopping must be True, False or None, got {early_stopping!r}"
            )
        if early_stopping is None:
            early_stopping = self._validation_loss_ranks_epochs
        if epochs is None:
            epochs = DEFAULT_MAX_EPOCHS if early_stopping else DEFAULT_EPOCHS
        if patience is None:
            patience = self._default_patience
        return self._fit(
            source,
            validation_data,
            seed,
            epochs=epochs,
            patience=patience if early_stopping else None,
            **settings,
        )

    @strict
    def fit_disk(
        self,
        root: str | os.PathLike,
        pattern: str = "*.pkl",
        batch_size: int = 32,
        load_fn: Any = None,
        epochs: int | None = None,
        validation_data: Mapping[str, Any] | int | None = None,
        seed: int | None = None,
        restore_best: bool = False,
        progress: bool = True,
        early_stopping: bool | None = None,
        patience: int | None = None,
        chunk_rows: int = 4096,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
        self_consistency: SelfConsistency | None = None,
        cache: bool | str | os.PathLike | None = None,
    ) -> dict[str, list]:
        """Train on a bank of simulations on disk: the files in ``root`` matching
        ``pattern``, one simulation each (a dict of arrays without a batch axis, pickled
        by default; ``load_fn(path)`` reads another format), as BayesFlow's ``fit_disk``;
        or a chunked store written by ``simulator.sample_to_disk`` (zarr; read a stored
        chunk at a time, :class:`~amortized.training.zarr_bank.ZarrBank`).

        Files are read lazily, ``chunk_rows`` simulations at a time in a new random order
        each epoch, the next chunk in the background while the current one trains, so
        memory stays flat in the size of the bank (:class:`~amortized.training.disk.
        DiskBank`; every file is checked against the first and one that differs is
        named). A bank of files is read from its files in the first epoch and from a
        cache of what was read in later ones (``cache``: see :class:`~amortized.training.
        disk.DiskBank`; on by default with the default unpickler), the same values in the
        same random order at a fraction of the cost. Standardization is learned from the
        first chunk. Early stopping,
        ``validation_data`` (else 5% of the files held out), ``epochs`` and checkpoints as
        in :meth:`fit_offline`.
        """
        from ..training.disk import DiskBank
        from ..training.zarr_bank import ZarrBank, is_zarr_store

        chunk_rows = check_positive_int("fit_disk", "chunk_rows", chunk_rows)
        if is_zarr_store(root):
            if cache:
                raise ValueError(
                    f"fit_disk: cache={cache!r} is for a bank of files; {str(root)!r} is a "
                    "zarr store, read a stored chunk at a time"
                )
            bank = ZarrBank(root, chunk_rows=chunk_rows)
        else:
            bank = DiskBank(root, pattern, load_fn, chunk_rows=chunk_rows, cache=cache)
        try:
            return self._fit_fixed_set(
                "fit_disk",
                dict(disk=bank),
                validation_data,
                seed,
                epochs,
                early_stopping,
                patience,
                batch_size=batch_size,
                restore_best=restore_best,
                progress=progress,
                checkpoint_dir=checkpoint_dir,
                checkpoint_every=checkpoint_every,
                resume=resume,
                self_consistency=self_consistency,
            )
        finally:
            if isinstance(bank, DiskBank):
                bank.close()

    @strict
    def fit_online(
        self,
        epochs: int = 100,
        num_batches_per_epoch: int = 100,
        batch_size: int = 32,
        validation_data: Mapping[str, Any] | int | None = None,
        seed: int | None = None,
        restore_best: bool = False,
        progress: bool = True,
        mask_rate: float = 0.0,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
        self_consistency: SelfConsistency | None = None,
    ) -> dict[str, list]:
        """Train on fresh simulations: each epoch simulates
        ``num_batches_per_epoch * batch_size`` datasets. With a ``meta_fn`` every batch of
        simulations gets its own meta draw (e.g. its own N), padded with a mask, so that
        training sees every size while compiling only a few padded shapes.

        Checkpoints (both fits): ``checkpoint_dir`` gets a checkpoint every
        ``checkpoint_every`` epochs (networks, optimizer state, keys, history, early
        stopping's state; written atomically, the newest two kept). After a crash or a
        killed job, the same call with ``resume=True`` continues from the newest readable
        checkpoint and ends with the weights the uninterrupted run would have had; a
        corrupted or half-written checkpoint is skipped with a warning, and one written by
        another model or other settings raises."""
        self._require_simulator("fit_online")
        source = dict(
            simulate=lambda n, s: self._simulate_for_training(n, s, batch_size),
            num_batches_per_epoch=num_batches_per_epoch,
        )
        return self._fit(
            source,
            validation_data,
            seed,
            epochs=epochs,
            batch_size=batch_size,
            restore_best=restore_best,
            progress=progress,
            mask_rate=mask_rate,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume=resume,
            self_consistency=self_consistency,
        )

    def _fit(self, source, validation_data, seed, **settings):
        """The approximator's fit with this workflow's validation data, learning rate and
        optimizer; ``settings`` are the fit method's own keywords, passed on unchanged but
        for ``self_consistency``, which becomes the term training adds
        (:func:`~amortized.approximators.self_consistency.prepare`)."""
        sc = settings.pop("self_consistency", None)
        if sc is not None:
            settings["self_consistency"] = prepare_self_consistency(
                sc, self.model, self.approximator, _stream(seed, "self_consistency")
            )
        return self.approximator.fit(
            **source,
            **settings,
            validation_data=self._validation(validation_data, seed, settings["batch_size"]),
            seed=seed,
            learning_rate=self.initial_learning_rate,
            optimizer=self.optimizer,
        )

    # -- inference ---------------------------------------------------------------------
    @strict
    def sample(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = True,
    ) -> dict[str, np.ndarray]:
        """Posterior draws ``{name: (num_datasets, num_samples, *shape)}`` in the original
        parameter space (a progress bar shows for requests of several chunks)."""
        return self.approximator.sample(
            num_samples=num_samples, conditions=conditions, seed=seed, progress=progress
        )

    @strict
    def sample_and_log_prob(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = True,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Draws and their log q ``(num_datasets, num_samples)``; see
        :meth:`ContinuousApproximator.sample_and_log_prob`."""
        return self.approximator.sample_and_log_prob(
            num_samples=num_samples, conditions=conditions, seed=seed, progress=progress
        )

    @strict
    def log_prob(self, data: Mapping[str, Any]) -> np.ndarray:
        """Posterior log density of the parameters in ``data`` given its conditions,
        in the original parameter space: ``(num_datasets,)``."""
        return self.approximator.log_prob(data)

    @strict
    def log_prob_of_draws(
        self, *, draws: Mapping[str, Any], conditions: Mapping[str, Any]
    ) -> np.ndarray:
        """log q of many draws per dataset, ``(num_datasets, num_samples)``; see
        :meth:`ContinuousApproximator.log_prob_of_draws`."""
        return self.approximator.log_prob_of_draws(draws=draws, conditions=conditions)

    @strict
    def estimate(self, conditions: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
        """Posterior statistics ``{variable: {rule: {statistic: array}}}`` of a point
        estimator (``ScoringRuleNetwork`` / ``PointNetwork``); see
        :meth:`~amortized.ScoringRuleApproximator.estimate`."""
        if not isinstance(self.approximator, ScoringRuleApproximator):
            raise TypeError(
                f"estimate: needs a point estimator (bf.networks.ScoringRuleNetwork or "
                f"PointNetwork) as the inference network, got "
                f"{type(self.inference_network).__name__}; use sample() for its draws"
            )
        return self.approximator.estimate(conditions)

    @strict
    def summarize(self, data: Mapping[str, Any]) -> np.ndarray:
        """Learned summaries ``(num_datasets, summary_dim)`` of the summary network."""
        return self.approximator.summarize(data)

    # -- model criticism (observed data) ---------------------------------------------
    @strict
    def misspecification_test(
        self,
        observed: Mapping[str, Any],
        num_reference: int = 2000,
        num_null: int = 1000,
        alpha: float = 0.05,
        batch: bool = False,
        seed: int | None = None,
    ):
        """Is each observed dataset one the model could have produced? The maximum mean
        discrepancy between its learned summaries and those of ``num_reference``
        simulations, with a p-value from ``num_null`` other simulations
        (:func:`~amortized.workflow.criticism.misspecification`); ``batch=True`` tests
        all observed datasets together. Returns a
        :class:`~amortized.diagnostics.misspecification.MisspecificationTest`
        (``p_value``, ``flagged`` per dataset)."""
        from .criticism import misspecification

        return misspecification(self, observed, num_reference=num_reference,
                                num_null=num_null, alpha=alpha, batch=batch, seed=seed)  # fmt: skip

    @strict
    def prior_predictive(
        self,
        observed: Mapping[str, Any] | None = None,
        statistics: Mapping[str, Any] | None = None,
        num_simulations: int = 1000,
        alpha: float = 0.05,
        seed: int | None = None,
    ):
        """Prior predictive check: test statistics ``{name: f(data) -> (num_datasets,)}``
        (default: mean, sd, min, max of sets and series) of ``num_simulations`` simulations
        against the observed datasets' (:func:`~amortized.workflow.criticism.
        prior_predictive`); a :class:`~amortized.diagnostics.predictive.PredictiveCheck`."""
        from .criticism import prior_predictive

        n = num_simulations
        return prior_predictive(self, observed, statistics=statistics, num_simulations=n,
                                alpha=alpha, seed=seed)  # fmt: skip

    @strict
    def posterior_predictive(
        self,
        observed: Mapping[str, Any],
        statistics: Mapping[str, Any] | None = None,
        num_samples: int = 200,
        keep: str | Sequence[str] = (),
        alpha: float = 0.05,
        seed: int | None = None,
    ):
        """Posterior predictive check of each observed dataset: the simulator run at
        ``num_samples`` of its amortized posterior draws, and per statistic the p-value
        ``P(T(y_rep) >= T(y) | y)``; ``keep``: observed variables (covariates) held fixed
        in the replicates (:func:`~amortized.workflow.criticism.posterior_predictive`)."""
        from .criticism import posterior_predictive

        return posterior_predictive(self, observed, statistics=statistics,
                                    num_samples=num_samples, keep=keep, alpha=alpha,
                                    seed=seed)  # fmt: skip

    @strict
    def marginal_likelihood(
        self,
        observed: Mapping[str, Any],
        model: DensityModel | None = None,
        num_samples: int = 2000,
        seed: int | None = None,
    ):
        """log p(y) of each observed dataset by importance sampling from the amortized
        posterior, with its standard error, Pareto k-hat and the self-consistency spread
        of ``log p(theta, y) - log q(theta | y)`` over the draws (0 for an exact
        posterior; :mod:`amortized.diagnostics.marginal_likelihood`). ``model``: the
        ``NumPyroModel`` / ``LikelihoodModel`` (default: the one the workflow was built
        from)."""
        from .criticism import marginal_likelihood

        model = getattr(self, "model", None) if model is None else model
        if model is None:
            raise TypeError(
                "marginal_likelihood: needs the model's likelihood: pass model=bf.NumPyroModel"
                "(...) or bf.LikelihoodModel(...) (this workflow was built from a simulator, "
                "which has no density)"
            )
        return marginal_likelihood(self, model, observed, num_samples=num_samples, seed=seed)

    # -- diagnostics -------------------------------------------------------------------
    def _held_out(self, where, test_data, num_samples, variable_keys, seed):
        """Posterior draws for held-out simulations, their true values and the extra of
        :meth:`_held_out_draws`; for a point estimator, its estimates ``{variable: {rule:
        {statistic: array}}}`` instead of draws."""
        if not isinstance(test_data, Mapping):
            n = check_positive_int(where, "test_data (a number of simulations)", test_data)
            # with a meta_fn, a fresh meta draw per chunk (e.g. varied N), as in training
            test_data = self._simulate_for_training(n, _stream(seed, "held_out"), 64)
        # held-out simulations may carry outputs the model does not use (a meta_fn's N):
        # they are not conditions, so only the keys that reach the networks go to sample
        routes = key_routes(self.adapter, head_rows(test_data))
        conditions = {k: v for k, v in test_data.items() if routes.get(k)}
        if isinstance(self.approximator, ScoringRuleApproximator):
            if where != "compute_default_diagnostics":
                raise TypeError(
                    f"{where}: the figures and the report diagnose posterior draws, and a point "
                    f"estimator ({type(self.inference_network).__name__}) has none; "
                    f"compute_default_diagnostics gives its recovery and quantile coverage"
                )
            draws, extra = self.approximator.estimate(conditions), None
        else:
            draws, extra = self._held_out_draws(conditions, num_samples, seed)
        keys = (
            list(draws)
            if variable_keys is None
            else ([variable_keys] if isinstance(variable_keys, str) else list(variable_keys))
        )
        unknown = [k for k in keys if k not in draws]
        if unknown:
            raise KeyError(
                f"{where}: variable_keys {unknown} are not inference variables; "
                f"available: {sorted(draws)}"
            )
        missing = [k for k in keys if k not in test_data]
        if missing:
            raise KeyError(
                f"{where}: test_data lacks the true values of {missing} (needed to diagnose "
                f"the posterior); keys given: {sorted(test_data)}"
            )
        targets = {k: np.asarray(test_data[k]) for k in keys}
        return {k: draws[k] for k in keys}, targets, extra

    def _held_out_draws(self, conditions, num_samples, seed):
        """Posterior draws of held-out datasets, and what else the diagnostics take from
        the same draws (an ensemble's members' draws; None here)."""
        return self.sample(num_samples=num_samples, conditions=conditions, seed=seed), None

    @strict
    def compute_default_diagnostics(
        self,
        test_data: Mapping[str, Any] | int,
        num_samples: int | None = None,
        variable_keys: str | Sequence[str] | None = None,
        variable_names: Sequence[str] | None = None,
        test_quantities: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ):
        """Default diagnostics on held-out simulations ``test_data`` (a dict with the true
        parameters, or a number of fresh simulations): a pandas DataFrame with one row per
        metric (:data:`amortized.diagnostics.DEFAULT_METRICS`) and one column per variable.
        ``test_quantities`` ``{name: f(params) -> (m,)}`` are diagnosed like parameters.
        For a point estimator (``ScoringRuleNetwork``): recovery of each rule's statistic
        and coverage of its quantiles (:func:`~amortized.diagnostics.point_diagnostics`).
        ``num_samples``: posterior draws per dataset (default 1000); a point estimator
        draws none and refuses it."""
        point = isinstance(self.approximator, ScoringRuleApproximator)
        if point and num_samples is not None:
            raise TypeError(
                f"compute_default_diagnostics: num_samples={num_samples!r} sets posterior "
                f"draws, and a point estimator ({type(self.inference_network).__name__}) "
                f"draws none; leave it out"
            )
        if point and (variable_names is not None or test_quantities is not None):
            raise TypeError(
                "compute_default_diagnostics: variable_names and test_quantities need "
                "posterior draws; a point estimator has none"
            )
        num_samples = 1000 if num_samples is None else num_samples
        draws, targets, _ = self._held_out(
            "compute_default_diagnostics", test_data, num_samples, variable_keys, seed
        )
        if point:
            # no draws: recovery of each rule's point statistic, coverage of its quantiles
            rules = self.approximator.nets.inference.scoring_rules
            levels = {n: r.q for n, r in rules.items() if hasattr(r, "q")}
            return diagnostics.point_diagnostics(draws, targets, levels)
        return diagnostics.default_diagnostics(draws, targets, variable_names, test_quantities)

    @strict
    def plot_default_diagnostics(
        self,
        test_data: Mapping[str, Any] | int,
        num_samples: int = 1000,
        variable_keys: str | Sequence[str] | None = None,
        variable_names: Sequence[str] | None = None,
        test_quantities: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> dict:
        """``{"losses", "recovery", "calibration_ecdf", "coverage", "z_score_contraction"}``
        as matplotlib Figures for held-out simulations ``test_data``."""
        draws, targets, _ = self._held_out(
            "plot_default_diagnostics", test_data, num_samples, variable_keys, seed
        )
        return diagnostics.default_figures(
            draws, targets, self.history or None, variable_names, test_quantities
        )

    @strict
    def report(
        self,
        path: str | os.PathLike,
        test_data: Mapping[str, Any] | int = 300,
        num_samples: int = 1000,
        variable_keys: str | Sequence[str] | None = None,
        test_quantities: Mapping[str, Any] | None = None,
        configuration: Mapping[str, Any] | None = None,
        title: str = "Diagnostic report",
        seed: int | None = None,
        observed: Mapping[str, Any] | None = None,
        keep: str | Sequence[str] = (),
    ) -> Path:
        """Diagnose on ``test_data`` (default: 300 fresh simulations) and write the report
        folder ``path`` (figures, metrics.csv, history.json, report.md/.json/.html; see
        :mod:`amortized.diagnostics.report`). Returns the folder.

        ``observed``: observed datasets ``{name: (num_datasets, ...)}``; the report then
        also criticizes the model on them (``misspecification.png``,
        ``prior_predictive.png``, ``posterior_predictive.png``, and under ``"observed"``
        the indices of the datasets each check flags; ``keep`` as in
        :meth:`posterior_predictive`)."""
        draws, targets, _ = self._held_out("report", test_data, num_samples, variable_keys, seed)
        history = self.history or None
        dx = diagnostics.diagnose(draws, targets, history, test_quantities=test_quantities)
        figs = diagnostics.default_figures(
            draws, targets, history or {"loss": [float("nan")]}, test_quantities=test_quantities
        )
        figs["loss"] = figs.pop("losses")
        config = self._report_configuration(draws, dx.table, num_samples, configuration)
        crit = self._criticism(observed, keep, seed)
        steps = diagnostics.next_steps(dx.ratings, dx.history_check, first=crit[3] if crit else ())
        rep = diagnostics.build_report(
            dx.table, dx.ratings, history, dx.history_check, steps, config, title=title
        )
        self._add_criticism(rep, figs, crit)
        return diagnostics.write_report(path, rep, figs, dx.table, history)

    def _criticism(self, observed, keep, seed):
        """The model criticism of ``observed`` for a report (None without observed data):
        figures, their entries, the summary and the next steps
        (:func:`~amortized.workflow.criticism.observed_report`)."""
        if observed is None:
            return None
        from .criticism import observed_report

        crit_seed = None if seed is None else stream_seeds(seed, ("criticism",))["criticism"]
        return observed_report(self, observed, keep, seed=crit_seed)

    @staticmethod
    def _add_criticism(rep: dict, figs: dict, crit) -> None:
        if crit is not None:
            figs.update(crit[0])
            rep["figures"].update(crit[1])
            rep["observed"] = crit[2]

    def _report_configuration(self, draws, table, num_samples, configuration) -> dict[str, Any]:
        """The report's configuration: the networks and training (:meth:`_configuration`),
        the variables and the held-out data, then the user's ``configuration``."""
        config = self._configuration()
        config["inference variables"] = ", ".join(draws)
        config["test datasets"] = table.attrs["num_datasets"]
        config["posterior draws per dataset"] = num_samples
        config.update(dict(configuration or {}))
        return config

    def _configuration(self) -> dict[str, Any]:
        net = self.inference_network
        summary = self.approximator.summary_network
        hist = self.history or {}
        return {
            "inference network": f"{type(net).__name__} {net.config_json}",
            "summary network": "none"
            if summary is None
            else f"{type(summary).__name__} {summary.config_json}",
            "epochs trained": len(hist.get("loss", [])),
            "initial learning rate": self.initial_learning_rate,
        }

    # -- persistence -------------------------------------------------------------------
    @strict
    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
        """Save the trained approximator (networks, adapter, statistics, history) and
        optional JSON-serializable ``metadata`` (restored as ``workflow.metadata``)."""
        meta = checked_metadata(metadata)
        return save_approximator(
            self.approximator,
            path,
            extra={
                "initial_learning_rate": self.initial_learning_rate,
                "metadata": meta,
                "context": self.context,
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike, simulator: Simulator | None = None) -> BasicWorkflow:
        """Load a workflow saved with :meth:`save`; pass ``simulator`` (or the
        ``NumPyroModel`` / ``LikelihoodModel``) to keep simulating."""
        approximator, extra = load_approximator(path)
        wf = cls.__new__(cls)
        wf.initial_learning_rate = float(extra.get("initial_learning_rate", 5e-4))
        wf.optimizer = None
        wf.approximator = approximator
        restore_settings(wf, extra, simulator, "BasicWorkflow.load")
        return wf


def checked_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of a workflow's ``metadata``, refused unless JSON-serializable (it is saved)."""
    meta = dict(metadata or {})
    try:
        json.dumps(meta)
    except TypeError as err:
        raise TypeError(f"save: metadata must be JSON-serializable ({err})") from None
    return meta


def restore_settings(wf, extra: Mapping[str, Any], simulator, where: str) -> None:
    """A loaded workflow's simulator (a model with a likelihood also kept as ``wf.model``),
    metadata and context signature from the ``extra`` saved with it; a simulator whose
    context differs from the one the model was trained with raises."""
    wf.model = simulator if isinstance(simulator, DensityModel) else None
    wf.simulator = simulator.simulator if wf.model is not None else simulator
    wf.metadata = dict(extra.get("metadata", {}))
    wf._saved_context = extra.get("context")
    given = getattr(simulator, "context", None)
    if wf._saved_context is not None and given is not None and given != wf._saved_context:
        raise ValueError(
            f"{where}: the model was trained with context {wf._saved_context}, the "
            f"simulator passed gives {given}"
        )


def load(path: str | os.PathLike, simulator: Simulator | None = None) -> BasicWorkflow:
    """Load a saved workflow: ``bf.load("model.amz")`` (a model comparison classifier
    comes back as a :class:`~amortized.workflow.ModelComparisonWorkflow`, an ensemble as an
    :class:`~amortized.workflow.EnsembleWorkflow`)."""
    import zipfile

    from ..approximators import ModelComparisonApproximator
    from .model_comparison import ModelComparisonWorkflow  # they build on this module

    try:
        with zipfile.ZipFile(path) as zf:
            ensemble = "ensemble.json" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        ensemble = False  # the loader below names what is wrong with the file
    if ensemble:
        from .ensemble import EnsembleWorkflow

        return EnsembleWorkflow.load(path, simulator=simulator)
    wf = BasicWorkflow.load(path, simulator=simulator)
    if isinstance(wf.approximator, ModelComparisonApproximator):
        wf.__class__ = ModelComparisonWorkflow
    return wf
