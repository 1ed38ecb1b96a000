"""The shared part of every approximator: parts, trained state, boundary, training.

The work is done by pure functions (:mod:`.parts` checks and builds the networks,
:mod:`.inputs` turns user dicts into checked network arrays, :mod:`.fitting` runs one
``fit`` (:mod:`.training_inputs` prepares what it trains on, :mod:`amortized.training`
runs the compiled loop),
:mod:`.chunked` evaluates trained networks over any number of datasets); this class holds
the trained state and sequences them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from .._validation import strict
from ..adapters import Adapter
from ..networks.base import InferenceNetwork
from . import chunked, condition_checks, inputs
from . import regression_adjustment as ra
from .core import IC, SV, Networks
from .fitting import run_fit
from .parts import adjustment_option, build_networks, standardize_keys
from .standardization import Stats
from .trained import Trained


class Approximator:
    """What every approximator shares: its parts (networks, adapter, standardization),
    the trained state (networks, statistics, history, the shapes and condition ranges of
    training), the checks at the boundary, training (:meth:`fit`) and the learned
    conditions (:meth:`embed`, :meth:`summarize`). Subclasses add what they estimate
    (:class:`~amortized.approximators.continuous.ContinuousApproximator`: draws and
    densities). Parameters as for ContinuousApproximator.
    """

    @strict
    def __init__(
        self,
        inference_network: InferenceNetwork,
        summary_network: Any = None,
        adapter: Adapter | None = None,
        standardize: str | Sequence[str] | None = "all",
        regression_adjustment: bool | None = None,
    ):
        self.standardize_keys = standardize_keys(
            inference_network, summary_network, adapter, standardize
        )
        #: whether training fits the linear regression adjustment of the targets on the
        #: direct conditions (:mod:`~amortized.approximators.regression_adjustment`)
        self.regression_adjustment = adjustment_option(
            type(self).__name__, regression_adjustment, self.default_regression_adjustment
        )
        self._adjustment_asked = regression_adjustment is True
        self.inference_network = inference_network
        self.summary_network = summary_network
        self.adapter = adapter
        #: what training made (:class:`~amortized.approximators.trained.Trained`), or None
        self.state: Trained | None = None
        self.history: dict[str, list] = {"loss": [], "val_loss": []}

    #: the class's ``regression_adjustment`` when the constructor is given None
    default_regression_adjustment = False

    # -- saving ------------------------------------------------------------------------
    def saved_state(self) -> dict[str, Any]:
        """What a model file keeps of this approximator besides networks, adapter,
        statistics and history (JSON): whether a new training fits the regression
        adjustment (a trained model's fit travels in its statistics)."""
        return {"regression_adjustment": self.regression_adjustment}

    @classmethod
    def from_parts(cls, network, summary_network, adapter, standardize, state):
        """An untrained approximator of this class from its parts: a network, and the
        ``state`` of :meth:`saved_state` (a loader then sets weights and statistics; a
        workflow builds one from the network it was given)."""
        return cls(
            inference_network=network,
            summary_network=summary_network,
            adapter=adapter,
            standardize=standardize,
            regression_adjustment=state.get("regression_adjustment"),
        )

    # -- trained state (read-only views of ``state``) ----------------------------------
    @property
    def is_trained(self) -> bool:
        return self.state is not None

    @property
    def nets(self) -> Networks | None:
        return None if self.state is None else self.state.nets

    @property
    def stats(self) -> Stats | None:
        return None if self.state is None else self.state.stats

    @property
    def condition_ranges(self) -> condition_checks.Ranges | None:
        """Per-feature training ranges of the conditions (see condition_checks)."""
        return None if self.state is None else self.state.condition_ranges

    @property
    def condition_keys(self) -> list[str] | None:
        """Input keys whose values reached the network's conditions in training."""
        return None if self.state is None else self.state.condition_keys

    @property
    def _shapes(self) -> dict[str, tuple] | None:
        return None if self.state is None else self.state.shapes

    # -- boundary ----------------------------------------------------------------------

    @property
    def is_conditional(self) -> bool:
        """False for an unconditional density q(theta): nothing was routed to
        ``inference_conditions`` or ``summary_variables`` in training."""
        self._require_trained("is_conditional")
        return IC in self._shapes or SV in self._shapes

    def _check_training_keys(self, data: Mapping[str, Any]) -> list[str]:
        """Warn (:class:`~amortized.approximators.condition_checks.UnusedDataWarning`)
        about training keys that reach no network input; returns the condition keys."""
        keys, msg = condition_checks.training_keys(self.adapter, data)
        if msg:
            warnings.warn(msg, condition_checks.UnusedDataWarning, stacklevel=4)
        return keys

    def _check_condition_keys(self, conditions: Mapping[str, Any], where: str) -> dict:
        """Raise for condition keys that reach no network input; returns the routes."""
        return condition_checks.condition_routes(
            self.adapter, conditions, where, self.is_conditional, self.condition_keys
        )

    def _warn_out_of_range(self, arrays, routes, where: str):
        """Warn by dataset when a condition lies far outside the training ranges; the
        regression adjustment's features ``(n, k)`` where this computed them (a model
        whose adjustment has groups), else None."""
        msg = condition_checks.out_of_range_message(self.condition_ranges, arrays, routes, where)
        if msg:
            warnings.warn(msg, condition_checks.OutOfDistributionWarning, stacklevel=4)
        if ra.GROUPS_KEY in self.stats and arrays:
            # a value between an indicator's two training values (a universe code of 0.5)
            feats = np.asarray(chunked.features(self.nets, self.stats, arrays))
            n_ic = int(np.prod(arrays[IC].shape[1:])) if IC in arrays else 0
            msg = ra.unmatched_message(self.stats[ra.GROUPS_KEY], feats, n_ic, where)
            if msg:
                warnings.warn(msg, condition_checks.OutOfDistributionWarning, stacklevel=4)
            return feats
        return None

    def to_network_arrays(
        self, data: Mapping[str, Any], *, need_variables: bool = True, where: str = "data"
    ) -> dict[str, jax.Array]:
        """Apply the adapter and return float32 device arrays under the network keys,
        checking presence, shapes and finiteness (errors name the key;
        :func:`amortized.approximators.inputs.network_arrays`)."""
        adapted = inputs.adapt(self.adapter, data, need_variables, where)
        with inputs.nonfinite_traced(data):
            return self._network_arrays(adapted, need_variables, where)

    def _network_arrays(
        self, adapted: Mapping[str, Any], need_variables: bool, where: str
    ) -> dict[str, jax.Array]:
        return inputs.network_arrays(
            adapted,
            need_variables=need_variables,
            where=where,
            has_summary=self.summary_network is not None,
            trained_shapes=self._shapes,
        )

    def build(self, arrays: Mapping[str, jax.Array], key: jax.Array) -> None:
        """Create parameters and standardization statistics from a first batch of network
        arrays (replacing any trained state)."""
        self.state = self._untrained(arrays, key)

    def _untrained(self, arrays: Mapping[str, jax.Array], key: jax.Array) -> Trained:
        nets, stats = build_networks(
            self.inference_network,
            self.summary_network,
            arrays,
            self.standardize_keys,
            key,
            self.regression_adjustment,
            warn_unused=self._adjustment_asked,
        )
        return Trained(nets, stats, inputs.row_shapes(arrays))

    def _require_trained(self, what: str) -> None:
        if not self.is_trained:
            raise RuntimeError(
                f"ContinuousApproximator.{what}: the approximator is not trained yet; call "
                f"fit (or a workflow's fit_offline / fit_online) first, or load a saved one"
            )

    # -- training ----------------------------------------------------------------------
    @strict
    def fit(
        self,
        *,
        epochs: int,
        batch_size: int,
        seed: int | None = None,
        data_seed: int | None = None,
        dataset: Mapping[str, Any] | None = None,
        simulate: Callable[[int, int], Mapping[str, Any]] | None = None,
        disk: Any = None,
        num_batches_per_epoch: int | None = None,
        validation_data: Mapping[str, Any] | None = None,
        learning_rate: float = 5e-4,
        optimizer=None,
        restore_best: bool = False,
        progress: bool = True,
        mask_rate: float = 0.0,
        patience: int | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
        self_consistency: Any = None,
    ) -> dict[str, list]:
        """Train offline on ``dataset`` (or a bank on ``disk``: a
        :class:`~amortized.training.disk.DiskBank`) or online on ``simulate(n, seed)``.

        ``patience``: early stopping (:mod:`amortized.training.stopping`): lower the
        learning rate when the validation loss stalls, stop once it has not improved for
        this many epochs, and restore the best epoch.
        Offline without ``validation_data``, a random ``holdout_size(n)`` of the ``n``
        simulations is held out for it (5%, at least min(100, n / 5); recorded in the
        history as ``"held_out"``); online, ``validation_data`` is required.

        ``mask_rate``: at every training step hide this fraction of the observed rows of the
        summary variables (through ``summary_mask``), so that the approximator learns to
        handle missing observations. ``checkpoint_dir``: write a checkpoint there every
        ``checkpoint_every`` epochs; ``resume=True`` continues the run from its newest
        readable checkpoint, to the weights an uninterrupted run would end with
        (:mod:`amortized.training.checkpoint`).

        ``data_seed``: the seed of the training data's own randomness (the held-out split,
        online simulations), apart from ``seed``'s (initialization, batch order); several
        approximators given one ``data_seed`` and different seeds train on the same
        simulations (an ensemble). Default: drawn from ``seed``. ``self_consistency``: a
        :class:`~amortized.approximators.self_consistency.SelfConsistencyTerm` added to the
        training loss (a workflow builds it from ``bf.SelfConsistency``). Returns the history
        ``{"loss": [...], "val_loss": [...]}`` (per-epoch means).
        """
        self.state, self.history = run_fit(
            self,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            data_seed=data_seed,
            dataset=dataset,
            simulate=simulate,
            disk=disk,
            num_batches_per_epoch=num_batches_per_epoch,
            validation_data=validation_data,
            learning_rate=learning_rate,
            optimizer=optimizer,
            restore_best=restore_best,
            progress=progress,
            mask_rate=mask_rate,
            patience=patience,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume=resume,
            self_consistency=self_consistency,
        )
        return self.history
