"""EnsembleWorkflow: several inference networks trained on the same simulations, used as one
posterior (their mixture) and as a diagnostic (where they disagree).

Members differ in their inference network and/or their seed (initialization, batch order)
and share everything else: the simulator, the adapter, the summary network's design, the
training data (offline: the same simulations and held-out split; online: the same
simulations each epoch, through one ``data_seed``) and the validation data. A dataset on
which members trained on the same simulations give different posteriors is one where at
least one of them is wrong, whatever each one's own spread says: the held-out diagnostics
gain the rows ``ensemble_disagreement`` and ``ensemble_flagged``
(:mod:`amortized.diagnostics.ensemble_disagreement`), the report a figure of the
disagreement per held-out dataset against the true parameters, and
:meth:`EnsembleWorkflow.disagreement` flags observed datasets. The amortized Bayesian
workflow given an ensemble does not accept the amortized draws of such a dataset (it goes
on to importance sampling or MCMC).

>>> workflow = EnsembleWorkflow(
...     simulator=bf.simulators.benchmarks.two_moons(),
...     inference_networks={"flow_a": bf.networks.CouplingFlow(depth=2),
...                         "flow_b": bf.networks.CouplingFlow(depth=3)},
...     inference_variables=["theta"], inference_conditions=["x"])
>>> histories = workflow.fit_offline(workflow.simulate(1_000, seed=1), epochs=2,
...                                  batch_size=128, seed=2, progress=False)
>>> sorted(histories)
['flow_a', 'flow_b']
>>> x_obs = np.zeros((3, 2))
>>> workflow.sample(conditions={"x": x_obs}, num_samples=500, seed=3)["theta"].shape
(3, 500, 2)
>>> workflow.disagreement(conditions={"x": x_obs}, num_samples=500, seed=4).flagged.shape
(3,)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import diagnostics
from .._validation import strict
from ..adapters import Adapter
from ..approximators import ContinuousApproximator
from ..approximators.ensemble import EnsembleApproximator
from ..diagnostics._arrays import as_draws
from ..diagnostics.ensemble_disagreement import (
    ENSEMBLE_METRICS,
    ensemble_disagreement,
    with_disagreement,
)
from ..diagnostics.ratings import combine_history_checks, inspect_history
from ..networks import InferenceNetwork, RatioNetwork, ScoringRuleNetwork
from ..simulators import Simulator
from .basic import (
    BasicWorkflow,
    _resolve_network,
    checked_metadata,
    resolve_model,
    restore_settings,
)

#: members of the default ensemble (of the default network with different seeds): enough
#: for the spread of their means to be estimated (with 2 a single wrong member cannot be
#: told from a right one), few enough that training costs a small multiple of one network
DEFAULT_MEMBERS = 4


def _members(inference_networks, num_members: int | None) -> dict[str, InferenceNetwork]:
    """Member name -> inference network, from the constructor's arguments."""
    if num_members is not None and (
        isinstance(num_members, bool) or not isinstance(num_members, int) or num_members < 2
    ):
        raise ValueError(
            f"EnsembleWorkflow: num_members must be an integer >= 2 (an ensemble of one "
            f"cannot disagree), got {num_members!r}"
        )
    if inference_networks is None or isinstance(inference_networks, str | InferenceNetwork):
        k = DEFAULT_MEMBERS if num_members is None else num_members
        nets = {f"member_{i}": inference_networks for i in range(k)}
    else:
        if num_members is not None:
            raise ValueError(
                "EnsembleWorkflow: num_members repeats one network with different seeds; "
                "with a list or dict of inference_networks the members are those networks "
                "(repeat an entry for more seeds of it)"
            )
        if isinstance(inference_networks, Mapping):
            nets = {str(k): v for k, v in inference_networks.items()}
        elif isinstance(inference_networks, Sequence):
            nets = {f"member_{i}": n for i, n in enumerate(inference_networks)}
        else:
            raise TypeError(
                f"EnsembleWorkflow: inference_networks must be a network, a network name, "
                f"a list or a dict of them, got {type(inference_networks).__name__}"
            )
        if len(nets) < 2:
            raise ValueError(
                f"EnsembleWorkflow: give at least 2 inference_networks, got {len(nets)}"
            )
    out = {}
    for name, net in nets.items():
        net = _resolve_network(net)
        if isinstance(net, ScoringRuleNetwork | RatioNetwork):
            raise TypeError(
                f"EnsembleWorkflow: member {name!r} is a {type(net).__name__}; members must be "
                f"posterior samplers (a network with sample and log_prob, e.g. CouplingFlow)"
            )
        out[name] = net
    return out


class EnsembleWorkflow(BasicWorkflow):
    """Train several inference networks on the same simulations; their mixture is the
    posterior, their disagreement a diagnostic (see the module docstring).

    Parameters
    ----------
    simulator, adapter, summary_network, initial_learning_rate, optimizer,
    inference_variables, inference_conditions, summary_variables, summary_mask, standardize
        As for :class:`BasicWorkflow`; every member gets its own summary network of the
        given design (its own weights).
    inference_networks : network, name, list or dict of them, default CouplingFlow()
        One network (or name): ``num_members`` members of it with different seeds. A list
        or a dict ``{name: network}``: one member per entry, named by the dict's keys
        (else ``member_0``, ...).
    num_members : int, default 4 (``DEFAULT_MEMBERS``)
        Only with a single network.
    weights : sequence of float, optional
        Mixture weights of the members (default equal).
    """

    @strict
    def __init__(
        self,
        simulator: Simulator | None = None,
        adapter: Adapter | None = None,
        inference_networks: Any = None,
        num_members: int | None = None,
        summary_network: Any = None,
        initial_learning_rate: float = 5e-4,
        optimizer: Any = None,
        inference_variables: str | Sequence[str] | None = None,
        inference_conditions: str | Sequence[str] | None = None,
        summary_variables: str | Sequence[str] | None = None,
        summary_mask: str | None = None,
        standardize: str | Sequence[str] | None = "all",
        weights: Sequence[float] | None = None,
    ):
        self.model, simulator, adapter = resolve_model(
            "EnsembleWorkflow",
            simulator,
            adapter,
            inference_variables,
            inference_conditions,
            summary_variables,
            summary_mask,
        )
        self._set_up(simulator, initial_learning_rate, optimizer)
        nets = _members(inference_networks, num_members)
        self.member_names = list(nets)
        self.approximator = EnsembleApproximator(
            [
                ContinuousApproximator.from_parts(net, summary_network, adapter, standardize, {})
                for net in nets.values()
            ],
            weights=weights,
        )

    # -- the members ---------------------------------------------------------------------
    @property
    def adapter(self) -> Adapter:
        return self.approximator.members[0].adapter

    def _set_adapter(self, adapter: Adapter) -> None:
        for m in self.approximator.members:
            m.adapter = adapter

    @property
    def inference_networks(self) -> dict[str, InferenceNetwork]:
        """Member name -> its inference network."""
        return {
            n: m.inference_network
            for n, m in zip(self.member_names, self.approximator.members, strict=True)
        }

    @property
    def inference_network(self) -> InferenceNetwork:
        raise AttributeError(
            "EnsembleWorkflow has one inference network per member: use "
            "workflow.inference_networks (member name -> network)"
        )

    @property
    def histories(self) -> dict[str, dict[str, list]]:
        """Member name -> its training history."""
        return dict(zip(self.member_names, self.approximator.histories, strict=True))

    @property
    def history(self) -> dict[str, list]:
        raise AttributeError(
            "EnsembleWorkflow has one training history per member: use workflow.histories "
            "(member name -> history)"
        )

    @property
    def _validation_loss_ranks_epochs(self) -> bool:
        return self.approximator.validation_loss_ranks_epochs

    @property
    def _default_patience(self) -> int:
        return max(m.inference_network.default_patience for m in self.approximator.members)

    def _fit(self, source, validation_data, seed, **settings) -> dict[str, dict[str, list]]:
        """Every member's fit on the same data (see :meth:`EnsembleApproximator.fit`);
        returns member name -> history."""
        return dict(zip(self.member_names, super()._fit(source, validation_data, seed, **settings),
                        strict=True))  # fmt: skip

    # -- inference -----------------------------------------------------------------------
    @strict
    def disagreement(
        self,
        *,
        conditions: Mapping[str, Any],
        num_samples: int = 1000,
        seed: int | None = None,
    ):
        """How far the members' posteriors differ on each dataset of ``conditions``
        (:class:`~amortized.diagnostics.ensemble_disagreement.Disagreement`:
        ``disagreement`` and ``log_sd_spread`` ``(num_datasets, dim)``, ``flagged
        (num_datasets,)``)."""
        return self.approximator.disagreement(
            num_samples=num_samples, conditions=conditions, seed=seed
        )

    def estimate(self, conditions: Mapping[str, Any]):
        raise TypeError(
            "EnsembleWorkflow.estimate: the members are posterior samplers, not point "
            "estimators; use sample()"
        )

    @strict
    def summarize(self, data: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Member name -> its learned summaries ``(num_datasets, summary_dim)`` (each
        member has its own summary network)."""
        return {
            n: m.summarize(data)
            for n, m in zip(self.member_names, self.approximator.members, strict=True)
        }

    # -- diagnostics ---------------------------------------------------------------------
    def _held_out_draws(self, conditions, num_samples, seed):
        return self.approximator.sample_with_members(
            num_samples=num_samples, conditions=conditions, seed=seed
        )

    def _diagnosed(self, where, test_data, num_samples, variable_keys, seed):
        """Held-out mixture draws, true values and the members' disagreement on the
        selected variables."""
        draws, targets, members = self._held_out(where, test_data, num_samples, variable_keys, seed)
        member_draws = np.concatenate([members[k] for k in draws], axis=-1)
        return draws, targets, ensemble_disagreement(member_draws)

    @strict
    def compute_default_diagnostics(
        self,
        test_data: Mapping[str, Any] | int,
        num_samples: int = 1000,
        variable_keys: str | Sequence[str] | None = None,
        variable_names: Sequence[str] | None = None,
        test_quantities: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ):
        """The default diagnostics of the mixture's draws
        (:meth:`BasicWorkflow.compute_default_diagnostics`) and the rows
        ``ensemble_disagreement`` and ``ensemble_flagged`` per parameter; the flagged
        held-out datasets are listed in ``table.attrs["ensemble_flagged_datasets"]``."""
        draws, targets, dis = self._diagnosed(
            "compute_default_diagnostics", test_data, num_samples, variable_keys, seed
        )
        table = diagnostics.default_diagnostics(draws, targets, variable_names, test_quantities)
        return with_disagreement(table, dis)

    def _figures(self, draws, targets, dis, variable_names, test_quantities) -> dict:
        figs = diagnostics.default_figures(draws, targets, None, variable_names, test_quantities)
        figs["losses"] = diagnostics.plots.member_losses(self.histories)
        d = as_draws("plot_default_diagnostics", draws, targets, variable_names)
        figs["ensemble_disagreement"] = diagnostics.plots.disagreement_plot(
            dis.disagreement, d.targets, list(d.names), dis.threshold, dis.flagged
        )
        return figs

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
        """The figures of :meth:`BasicWorkflow.plot_default_diagnostics` for the
        mixture (``"losses"``: every member's curves) and ``"ensemble_disagreement"``."""
        draws, targets, dis = self._diagnosed(
            "plot_default_diagnostics", test_data, num_samples, variable_keys, seed
        )
        return self._figures(draws, targets, dis, variable_names, test_quantities)

    @strict
    def report(
        self,
        path: str | os.PathLike,
        test_data: Mapping[str, Any] | int = 300,
        num_samples: int = 1000,
        variable_keys: str | Sequence[str] | None = None,
        test_quantities: Mapping[str, Any] | None = None,
        configuration: Mapping[str, Any] | None = None,
        title: str = "Diagnostic report (ensemble)",
        seed: int | None = None,
        observed: Mapping[str, Any] | None = None,
        keep: str | Sequence[str] = (),
    ) -> Path:
        """The diagnostic report of :meth:`BasicWorkflow.report` for the mixture, with the
        members' training curves, the ``ensemble_disagreement`` figure and metrics, and
        the flagged held-out datasets in its assessment and next steps; ``observed`` and
        ``keep`` as there."""
        draws, targets, dis = self._diagnosed("report", test_data, num_samples, variable_keys,
                                              seed)  # fmt: skip
        dx = diagnostics.diagnose(draws, targets, None, test_quantities=test_quantities)
        histories = {n: h for n, h in self.histories.items() if h and h.get("loss")}
        check = (
            combine_history_checks({n: inspect_history(h) for n, h in histories.items()})
            if histories
            else None
        )
        table = with_disagreement(dx.table, dis)
        figs = self._figures(draws, targets, dis, None, test_quantities)
        figs["loss"] = figs.pop("losses")
        config = self._report_configuration(draws, dx.table, num_samples, configuration)
        flagged = table.attrs["ensemble_flagged_datasets"]
        n = len(dis.flagged)
        disagree = [
            f"The members disagree on {len(flagged)} of {n} held-out datasets (the red "
            f"points in ensemble_disagreement.png): their posteriors there are not to be "
            f"trusted without a check; train on more simulations, or run the amortized "
            f"Bayesian workflow, which sends such datasets on to importance sampling or MCMC."
        ]
        crit = self._criticism(observed, keep, seed)
        first = (crit[3] if crit else []) + (disagree if flagged else [])
        steps = diagnostics.next_steps(dx.ratings, check, first=first)
        rep = diagnostics.build_report(table, dx.ratings, None, check, steps, config, title=title)
        self._add_criticism(rep, figs, crit)
        rep["history"] = _histories_summary(histories, check)
        rep["metric_descriptions"].update(ENSEMBLE_METRICS)
        rep["figures"]["loss"]["explanation"] = (
            "Each member's training (solid) and validation (dashed) loss per epoch."
        )
        shown = ", ".join(map(str, flagged[:20])) + (", ..." if len(flagged) > 20 else "")
        rep["figures"]["ensemble_disagreement"] = {
            "file": "ensemble_disagreement.png",
            "explanation": "Per held-out dataset and parameter: the spread of the members' "
            "posterior means in posterior sd, against the true value. Members trained on the "
            "same simulations should agree; where they do not, at least one is wrong.",
            "assessment": (
                f"{len(flagged)} of {n} datasets flagged (indices {shown})"
                if flagged
                else f"the members agree on all {n} datasets"
            ),
        }
        rep["thresholds"]["ensemble_disagreement"] = dis.threshold
        return diagnostics.write_report(path, rep, figs, table, self.histories)

    def _configuration(self) -> dict[str, Any]:
        summary = self.approximator.members[0].summary_network
        nets = self.inference_networks
        return {
            "ensemble members": len(nets),
            **{
                f"inference network ({n})": f"{type(v).__name__} {v.config_json}"
                for n, v in nets.items()
            },
            "summary network": "none"
            if summary is None
            else f"{type(summary).__name__} {summary.config_json}",
            "epochs trained": ", ".join(
                f"{n}: {len(h.get('loss', []))}" for n, h in self.histories.items()
            ),
            "initial learning rate": self.initial_learning_rate,
        }

    # -- persistence ---------------------------------------------------------------------
    @strict
    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
        """Save every member (one file, :meth:`EnsembleApproximator.save`), the member
        names, the learning rate, ``metadata`` and the context signature."""
        meta = checked_metadata(metadata)
        return self.approximator.save(
            path,
            extra={
                "member_names": self.member_names,
                "initial_learning_rate": self.initial_learning_rate,
                "metadata": meta,
                "context": self.context,
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike, simulator: Simulator | None = None) -> EnsembleWorkflow:
        """Load a workflow saved with :meth:`save`; pass ``simulator`` to keep simulating."""
        approximator, extra = EnsembleApproximator.load_with_extra(path)
        wf = cls.__new__(cls)
        wf._set_up(None, float(extra.get("initial_learning_rate", 5e-4)), None)
        wf.approximator = approximator
        wf.member_names = list(
            extra.get("member_names") or [f"member_{i}" for i in range(len(approximator))]
        )
        restore_settings(wf, extra, simulator, "EnsembleWorkflow.load")
        return wf


def _histories_summary(histories: Mapping[str, Mapping], check) -> dict:
    """The report's ``"history"`` entry for several members: the longest run's epochs, the
    members' mean final losses, and the combined check's findings
    (:func:`~amortized.diagnostics.report.history_summary`)."""
    from ..diagnostics.report import _finite, history_summary

    def mean_last(key):
        last = [float(h[key][-1]) for h in histories.values() if h.get(key)]
        return _finite(float(np.mean(last))) if last else None

    return {
        **history_summary(None, check),
        "num_epochs": max((len(h.get("loss", [])) for h in histories.values()), default=0),
        "final_loss": mean_last("loss"),
        "final_val_loss": mean_last("val_loss"),
    }
