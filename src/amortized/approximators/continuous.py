"""ContinuousApproximator: adapter + learned standardization + networks.

It turns user dicts into network arrays once at the boundary (checking keys, shapes and
finiteness there), trains with the compiled loop of :mod:`amortized.training`, and returns
samples and densities in the user's original parameter space, keyed by variable name.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from .._validation import (
    as_key,
    batch_size_of,
    check_finite,
    check_positive_int,
    strict,
)
from ..adapters import NETWORK_KEYS, Adapter
from ..adapters.usage import condition_sources, head_rows, key_routes
from ..networks.base import InferenceNetwork
from ..networks.summary_base import SummaryNetwork
from ..training import default_optimizer, fit, parallel
from ..training.fit import steps_done
from ..training.holdout import holdout_size, split_rows
from ..training.stopping import PlateauRule
from . import condition_checks, core
from .core import IC, IV, SM, SV, Networks
from .standardization import Stats, compute_stats

STANDARDIZE_CHOICES = ("all", None) + NETWORK_KEYS
SAMPLE_CHUNK = 2**17  # rows per compiled sampling call: bounds memory for any request
RANGE_ROWS = 4096  # training datasets whose conditions set the saved ranges


def _bucket(n: int, cap: int) -> int:
    """The next power of two >= n (capped), so that sampling compiles a handful of times."""
    return min(cap, 1 << max(0, int(n - 1).bit_length()))


def _row_chunk(tree, start: int, stop: int, cap: int):
    """Rows ``start:stop`` of every array in ``tree``, padded to a power-of-two bucket (at most
    ``cap``) so that chunked calls compile a handful of times; returns ``(chunk, size)``."""
    size = _bucket(stop - start, cap)
    # sliced and padded in NumPy: eager JAX slices would compile a small program for every
    # new number of datasets, and a long session would pile them up
    return jax.tree.map(lambda v: _pad_rows(np.asarray(v)[start:stop], size), tree), size


@eqx.filter_jit
def _draw_chunk(sampler, nets, stats, key, cond_batch, num_datasets, num_samples, devices):
    """``sampler`` (:func:`core.sample` or :func:`core.sample_and_log_prob`) on one chunk of
    datasets, its draws split over ``devices``."""

    def draw(inputs, k, s):
        nets_, stats_, cond_ = inputs
        return sampler(nets_, stats_, k, cond_, num_datasets, s)

    return parallel.draws(draw, (nets, stats, cond_batch), key, num_samples, devices)


@eqx.filter_jit
def _log_prob(nets, stats, batch):
    return core.log_prob(nets, stats, batch)


@eqx.filter_jit
def _log_prob_draws(nets, stats, cond_batch, x):
    return core.log_prob_draws(nets, stats, cond_batch, x)


@eqx.filter_jit
def _summaries(nets, stats, batch):
    return core.summaries(nets, stats, batch)


@eqx.filter_jit
def _embed(nets, stats, batch):
    return core.conditions(nets, stats, batch, jax.tree.leaves(batch)[0].shape[0])


class ContinuousApproximator:
    """Amortized posterior q(theta | x) for continuous parameters.

    Parameters
    ----------
    inference_network : InferenceNetwork
        E.g. ``CouplingFlow()`` or ``FlowMatching()``; built when training starts.
    summary_network : SummaryNetwork, optional
        E.g. ``SetTransformer()``: maps the ``summary_variables`` of one dataset
        ``(N, features)`` to a vector; trained jointly.
    adapter : Adapter, optional
        Maps simulator outputs to ``inference_variables`` / ``inference_conditions`` /
        ``summary_variables``. Without one, data must already use those keys.
    standardize : "all", None, or a network key or list of them, default "all"
        Which network inputs get a learned per-feature standardization.

    Examples
    --------
    >>> adapter = bf.Adapter().rename("theta", "inference_variables").rename(
    ...     "x", "inference_conditions")
    >>> approximator = ContinuousApproximator(
    ...     inference_network=bf.networks.FlowMatching(), adapter=adapter)
    """

    @strict
    def __init__(
        self,
        inference_network: InferenceNetwork,
        summary_network: Any = None,
        adapter: Adapter | None = None,
        standardize: str | Sequence[str] | None = "all",
    ):
        if not isinstance(inference_network, InferenceNetwork):
            raise TypeError(
                f"ContinuousApproximator: inference_network must be an amortized inference "
                f"network (e.g. bf.networks.CouplingFlow()), got {type(inference_network).__name__}"
            )
        if summary_network is not None and not isinstance(summary_network, SummaryNetwork):
            raise TypeError(
                f"ContinuousApproximator: summary_network must be a summary network (e.g. "
                f"bf.networks.SetTransformer()), got {type(summary_network).__name__}"
            )
        if adapter is not None and not isinstance(adapter, Adapter):
            raise TypeError(
                f"ContinuousApproximator: adapter must be an Adapter, got {type(adapter).__name__}"
            )
        keys = (
            [standardize]
            if isinstance(standardize, str) or standardize is None
            else list(standardize)
        )
        for k in keys:
            if k not in STANDARDIZE_CHOICES:
                raise ValueError(
                    f"ContinuousApproximator: standardize entries must be among "
                    f"{list(STANDARDIZE_CHOICES)}, got {k!r}"
                )
        if SM in keys:
            raise ValueError("ContinuousApproximator: 'summary_mask' is a mask, not standardized")
        self.standardize_keys = (
            [k for k in NETWORK_KEYS if k != SM]
            if "all" in keys
            else [k for k in keys if k is not None]
        )
        self.inference_network = inference_network
        self.summary_network = summary_network
        self.adapter = adapter
        self.nets: Networks | None = None
        self.stats: Stats | None = None
        self.history: dict[str, list] = {"loss": [], "val_loss": []}
        #: per-feature training ranges of the conditions (see condition_checks)
        self.condition_ranges: condition_checks.Ranges | None = None
        #: input keys whose values reach the network's conditions in training
        self.condition_keys: list[str] | None = None

    # -- saving ------------------------------------------------------------------------
    def saved_state(self) -> dict[str, Any]:
        """What a model file keeps of this approximator besides networks, adapter,
        statistics and history (JSON; nothing for this class)."""
        return {}

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
        )

    # -- boundary ----------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return self.nets is not None

    @property
    def log_prob_is_exact(self) -> bool:
        """False when the inference network's ``log_prob`` is not the exact density of its
        draws (FlowMatching asked for Hutchinson's trace estimator, a DiffusionModel that
        samples by an SDE): such a log q must not weight draws."""
        return self.log_prob_caveat is None

    @property
    def log_prob_caveat(self) -> str | None:
        """The inference network's reason why ``log_prob`` is not the exact density of its
        draws, or None (:attr:`~amortized.networks.InferenceNetwork.log_prob_caveat`)."""
        net = self.nets.inference if self.is_trained else self.inference_network
        return getattr(net, "log_prob_caveat", None)

    @property
    def one_pass_log_prob(self) -> bool:
        """Whether :meth:`sample_and_log_prob` gets log q from the sampling pass itself (a
        coupling flow) rather than from a second pass over the draws."""
        net = self.nets.inference if self.is_trained else self.inference_network
        return bool(getattr(net, "one_pass_log_prob", False))

    @property
    def is_conditional(self) -> bool:
        """False for an unconditional density q(theta): nothing was routed to
        ``inference_conditions`` or ``summary_variables`` in training."""
        self._require_trained("is_conditional")
        return IC in self._shapes or SV in self._shapes

    def _check_training_keys(self, data: Mapping[str, Any]) -> None:
        """Warn (:class:`~amortized.approximators.condition_checks.UnusedDataWarning`)
        about training keys that reach no network input; remember the condition keys."""
        routes = key_routes(self.adapter, head_rows(data))
        adapted = (
            self.adapter.forward(head_rows(data), strict=False)
            if self.adapter is not None
            else data
        )
        conditional = IC in adapted or SV in adapted
        self.condition_keys = condition_sources(routes)
        msg = condition_checks.unused_data_message(routes, conditional)
        if msg:
            warnings.warn(msg, condition_checks.UnusedDataWarning, stacklevel=4)

    def _check_condition_keys(self, conditions: Mapping[str, Any], where: str) -> dict:
        """Raise for condition keys that reach no network input; returns the routes."""
        if not isinstance(conditions, Mapping):
            raise TypeError(
                f"{where}: conditions must be a dict of arrays, got {type(conditions).__name__}"
            )
        routes = key_routes(self.adapter, head_rows(conditions))
        trained_on = self.condition_keys if self.condition_keys is not None else ["(unknown)"]
        err = condition_checks.unused_condition_error(
            where, routes, self.is_conditional, trained_on
        )
        if err is not None:
            raise err
        return routes

    def _update_ranges(self, arrays: Mapping[str, Any]) -> None:
        """Widen the saved training ranges of the conditions by those of ``arrays``."""
        rows = {k: jax.tree.map(lambda v: np.asarray(v)[:RANGE_ROWS], a) for k, a in arrays.items()}
        rows.pop(IV, None)
        new = condition_checks.compute_ranges(rows)
        old = self.condition_ranges or {}
        self.condition_ranges = {
            k: {
                "min": np.minimum(v["min"], old[k]["min"]) if k in old else v["min"],
                "max": np.maximum(v["max"], old[k]["max"]) if k in old else v["max"],
            }
            for k, v in new.items()
        }

    def _warn_out_of_range(self, arrays, routes, where: str) -> None:
        """Warn by dataset when a condition lies far outside the training ranges."""
        if not self.condition_ranges or not arrays:
            return
        found = condition_checks.outside(self.condition_ranges, arrays)
        if found:
            msg = condition_checks.ood_message(
                where, found, _rows(arrays), condition_checks.sources_by_network_key(routes)
            )
            warnings.warn(msg, condition_checks.OutOfDistributionWarning, stacklevel=4)

    def to_network_arrays(
        self, data: Mapping[str, Any], *, need_variables: bool = True, where: str = "data"
    ) -> dict[str, jax.Array]:
        """Apply the adapter and return float32 device arrays under the network keys,
        checking presence, shapes and finiteness (errors name the key)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{where}: expected a dict of arrays, got {type(data).__name__}")
        adapted = (
            self.adapter.forward(data, strict=need_variables)
            if self.adapter is not None
            else dict(data)
        )
        try:
            return self._network_arrays(adapted, need_variables, where)
        except ValueError as e:
            culprits = _nonfinite_keys(data)
            if "non-finite" in str(e) and culprits:
                raise ValueError(
                    f"{e} It comes from input key(s) {culprits}: "
                    f"{_describe_nonfinite(data, culprits[0])}"
                ) from None
            raise

    def _network_arrays(
        self, adapted: Mapping[str, Any], need_variables: bool, where: str
    ) -> dict[str, jax.Array]:
        out = {k: adapted[k] for k in NETWORK_KEYS if k in adapted}
        if need_variables and IV not in out:
            raise KeyError(
                f"{where}: after the adapter there is no 'inference_variables'; keys are "
                f"{sorted(adapted)}. Route parameters there (e.g. Adapter.concatenate(..., "
                f"into='inference_variables') or BasicWorkflow(inference_variables=[...]))"
            )
        if not need_variables:
            out.pop(IV, None)
        for k, v in _leaves(out).items():
            v = np.asarray(v)
            if not np.issubdtype(v.dtype, np.number) and v.dtype != bool:
                raise TypeError(f"{where}: {k!r} must be numeric, got dtype {v.dtype}")
            check_finite(where, k, v)
        out = {
            k: (
                {n: np.asarray(a) for n, a in v.items()}
                if isinstance(v, Mapping)
                else np.asarray(v)
            )
            for k, v in out.items()
        }
        if out:
            batch_size_of(where, _leaves(out))  # raises when the keys disagree in batch size
        for k in (IV, IC):
            if k in out and out[k].ndim not in (2, 4):
                raise ValueError(
                    f"{where}: {k!r} must have shape (batch, features), or (batch, height, "
                    f"width, channels) for an image, got {out[k].shape}; concatenate "
                    f"variables along the last axis (add a channel axis to an image with "
                    f"Adapter.expand_dims), and route sets or time series to "
                    f"'summary_variables' with a summary network"
                )
        _check_condition_map(where, out, getattr(self, "_shapes", {}).get(IV))
        if SV in out and self.summary_network is None:
            raise ValueError(
                f"{where}: 'summary_variables' (shape {_shape(out[SV])}) needs a summary_network; "
                f"add one, or route the data to 'inference_conditions' instead"
            )
        if SV not in out and self.summary_network is not None and out:
            raise KeyError(
                f"{where}: a summary_network is set but no 'summary_variables' arrived; "
                f"keys are {sorted(out)}"
            )
        if SM in out:
            _check_mask(where, out)
        if self.is_trained:
            self._check_shapes(out, where)
        return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), out)

    def _check_shapes(self, arrays: Mapping[str, np.ndarray], where: str) -> None:
        for k, v in arrays.items():
            expected = self._shapes.get(k)
            if k in (SV, SM):  # set sizes and sources may vary; the summary network checks
                continue
            if expected is not None and tuple(v.shape[1:]) != expected:
                raise ValueError(
                    f"{where}: {k!r} has shape {tuple(v.shape)}; this approximator was trained "
                    f"with shape (batch, {', '.join(map(str, expected))})"
                )
        if IC in self._shapes and IC not in arrays:
            raise KeyError(
                f"{where}: missing 'inference_conditions' that the approximator was trained with"
            )

    def build(self, arrays: Mapping[str, jax.Array], key: jax.Array) -> None:
        """Create parameters and standardization statistics from a first batch."""
        k_inf, k_sum = jax.random.split(key)
        self.stats = compute_stats(arrays, self.standardize_keys, row_masks={SV: SM})
        summary = None
        summary_dim = 0
        if self.summary_network is not None:
            sv = arrays[SV]
            shape = (
                {n: tuple(a.shape[1:]) for n, a in sv.items()}
                if isinstance(sv, Mapping)
                else sv.shape[1:]
            )
            summary = self.summary_network.build(shape, k_sum)
            summary_dim = summary.summary_dim
        x = arrays[IV]
        cond_dim = (int(np.prod(arrays[IC].shape[1:])) if IC in arrays else 0) + summary_dim
        layout = None
        if x.ndim == 4:  # an image target (H, W, C), with a condition map of D channels
            map_channels = arrays[IC].shape[-1] if IC in arrays and arrays[IC].ndim == 4 else 0
            layout = (*x.shape[1:], map_channels)
        dim = int(np.prod(x.shape[1:]))
        inference = self.inference_network.build(dim, cond_dim, k_inf, layout)
        self.nets = Networks(inference, summary)
        self._shapes = {
            k: () if isinstance(v, Mapping) else tuple(v.shape[1:]) for k, v in arrays.items()
        }

    def _require_density(self, what: str) -> None:
        self._require_trained(what)
        if not getattr(self.inference_network, "has_log_prob", False):
            raise NotImplementedError(f"{type(self.inference_network).__name__} has no density")

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
        dataset: Mapping[str, Any] | None = None,
        simulate: Callable[[int, int], Mapping[str, Any]] | None = None,
        num_batches_per_epoch: int | None = None,
        validation_data: Mapping[str, Any] | None = None,
        learning_rate: float = 5e-4,
        optimizer=None,
        restore_best: bool = False,
        progress: bool = True,
        mask_rate: float = 0.0,
        patience: int | None = None,
    ) -> dict[str, list]:
        """Train offline on ``dataset`` or online on ``simulate(n, seed)`` batches.

        ``patience``: early stopping (:mod:`amortized.training.stopping`): lower the
        learning rate when the validation loss stalls, stop once it has not improved for
        this many epochs, and restore the best epoch.
        Offline without ``validation_data``, a random ``holdout_size(n)`` of the ``n``
        simulations is held out for it (5%, at least min(100, n / 5); recorded in the
        history as ``"held_out"``); online, ``validation_data`` is required.

        ``mask_rate``: at every training step hide this fraction of the observed rows of the
        summary variables (through ``summary_mask``), so that the approximator learns to
        handle missing observations. Returns the history ``{"loss": [...], "val_loss":
        [...]}`` (per-epoch means).
        """
        if not 0.0 <= mask_rate < 1.0:
            raise ValueError(f"fit: mask_rate must lie in [0, 1), got {mask_rate}")
        if mask_rate > 0 and self.summary_network is None:
            raise ValueError(
                "fit: mask_rate hides rows of summary_variables; there is no summary_network"
            )
        epochs = check_positive_int("fit", "epochs", epochs)
        batch_size = check_positive_int("fit", "batch_size", batch_size)
        if patience is not None:
            patience = check_positive_int("fit", "patience", patience)
        if not self.inference_network.validation_loss_ranks_epochs and (
            patience is not None or restore_best
        ):
            what = "early stopping (patience)" if patience is not None else "restore_best"
            raise ValueError(
                f"fit: {what} ranks epochs by the validation loss, and the validation loss "
                f"of {type(self.inference_network).__name__} does not rank posteriors (it "
                f"measures the consistency of the map, which rises while the map learns); "
                f"train for a fixed number of epochs (BasicWorkflow.fit_offline("
                f"early_stopping=False))"
            )
        key = as_key(seed)
        k_hold, k_build, k_fit = jax.random.split(key, 3)
        k_sim = jax.random.fold_in(k_build, 1)  # online simulation seeds, apart from build
        if (dataset is None) == (simulate is None):
            raise ValueError("fit: give exactly one of dataset (offline) or simulate (online)")
        if patience is not None and validation_data is None and dataset is None:
            raise ValueError(
                "fit: early stopping (patience) of online training needs validation_data "
                "(a dict of simulations, or a number of them for BasicWorkflow.fit_online)"
            )
        val = None
        held_out = patience is not None and validation_data is None and dataset is not None
        if dataset is not None:
            self._check_training_keys(dataset)
            train = self.to_network_arrays(dataset, where="training data")
            if held_out:
                train, val = split_rows(train, holdout_size(_rows(train)), k_hold)
            steps_per_epoch = max(1, _rows(train) // min(batch_size, _rows(train)))

            def epoch_data(_):
                return train
        else:
            num_batches_per_epoch = check_positive_int(
                "fit_online", "num_batches_per_epoch", num_batches_per_epoch
            )
            steps_per_epoch = num_batches_per_epoch
            seeds = np.random.default_rng(int(jax.random.randint(k_sim, (), 0, 2**31 - 1)))
            raw = simulate(num_batches_per_epoch * batch_size, int(seeds.integers(2**31)))
            self._check_training_keys(raw)
            train = self.to_network_arrays(raw, where="simulated data")
            first = [train]

            def epoch_data(epoch):
                if epoch == 0:
                    return first.pop()
                return self.to_network_arrays(
                    simulate(num_batches_per_epoch * batch_size, int(seeds.integers(2**31))),
                    where="simulated data",
                )

        if validation_data is not None:
            val = self.to_network_arrays(validation_data, where="validation data")
        self.inference_network.check_training_steps(
            steps_done(self.history) + epochs * steps_per_epoch
        )
        if not self.is_trained:
            self.build(train, k_build)
        flat = optimizer is None  # a user's optimizer may depend on the parameter tree
        if flat:
            optimizer = default_optimizer(learning_rate, epochs * steps_per_epoch)
        loss_fn = core.loss if mask_rate == 0 else functools.partial(core.loss, mask_rate=mask_rate)
        self.nets, self.history = fit(
            self.nets,
            self.stats,
            loss_fn,
            optimizer,
            epochs,
            batch_size,
            k_fit,
            epoch_data,
            val,
            learning_rate=learning_rate,
            restore_best=restore_best,
            progress=progress,
            history=self.history,
            flat_params=flat,
            early_stopping=None if patience is None else PlateauRule(patience=patience),
            warn_overfitting=self.inference_network.validation_loss_ranks_epochs,
        )
        if held_out:
            self.history["held_out"] = _rows(val)
        self._update_ranges(train)
        return self.history

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
        parameter space, for every dataset in ``conditions``. Requests larger than one
        compiled call (2^17 draws) run in chunks, with a progress bar in a terminal."""
        z, _ = self._draw("sample", num_samples, conditions, seed, progress, False)
        return self._to_user_space(z)

    @strict
    def sample_and_log_prob(
        self,
        *,
        num_samples: int,
        conditions: Mapping[str, Any],
        seed: int | None = None,
        progress: bool = True,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Draws as :meth:`sample` gives them, and ``log q(theta_s | x_i)`` of each in the
        original space, ``(num_datasets, num_samples)``: what :meth:`log_prob_of_draws`
        computes, from the same pass through the network for a coupling flow (other
        networks evaluate their density after sampling). A draw that the inverse map
        saturated (moved inside its support, with a ``SupportBoundaryWarning``) gets NaN:
        it is not where the network put it, so no density describes it, and importance
        sampling gives it weight zero.

        >>> sim = bf.simulators.benchmarks.two_moons()
        >>> approximator = ContinuousApproximator(inference_network=bf.networks.CouplingFlow(
        ...     depth=2), adapter=bf.Adapter.create_default("theta", "x"))
        >>> history = approximator.fit(dataset=sim.sample(512, seed=0), epochs=2,
        ...                            batch_size=128, seed=0, progress=False)
        >>> data = {"x": sim.sample(3, seed=1)["x"]}
        >>> draws, log_q = approximator.sample_and_log_prob(num_samples=100, conditions=data)
        >>> draws["theta"].shape, log_q.shape
        ((3, 100, 2), (3, 100))
        """
        self._require_density("sample_and_log_prob")
        z, lp = self._draw("sample_and_log_prob", num_samples, conditions, seed, progress, True)
        draws = self._to_user_space(z)
        # without the support checks: a draw rounded onto a bound gives inf/NaN here
        # instead of an error for the whole batch
        with np.errstate(divide="ignore", invalid="ignore"):
            adapted, ldj = self._adapt_draws(draws, *lp.shape, check_support=False)
        log_q = lp + ldj
        if IV in adapted:
            # the round trip through the adapter returns a draw to the network's value unless
            # the inverse saturated (float32 logistic at 1 past ~17, exp at inf past ~89)
            back = np.reshape(np.asarray(adapted[IV], np.float64), z.shape)
            moved = np.any(~np.isclose(back, z, rtol=0.05, atol=0.5), axis=-1)
            log_q = np.where(moved, np.nan, log_q)
        return draws, log_q

    def _adapt_draws(self, draws, n: int, s: int, check_support: bool = True):
        """Draws ``{name: (n, s, ...)}`` through the adapter: the adapted arrays (rows
        flattened to ``n * s``) and the adapter's log|det J| per draw, ``(n, s)``."""
        flat = {k: np.reshape(v, (n * s, *np.shape(v)[2:])) for k, v in draws.items()}
        if self.adapter is None:
            return flat, np.zeros((n, s))
        adapted, ldj = self.adapter.forward(
            flat, strict=False, log_det_jac=True, check_support=check_support
        )
        if IV not in ldj:
            return adapted, np.zeros((n, s))
        return adapted, np.asarray(ldj[IV], np.float64).reshape(n, s, -1).sum(axis=2)

    def _draw(self, where, num_samples, conditions, seed, progress, with_log_prob):
        """Adapter-space draws ``(n, S, dim)`` (and their log q, or None), chunked."""
        self._require_trained(where)
        num_samples = check_positive_int(where, "num_samples", num_samples)
        routes = self._check_condition_keys(conditions, where)
        arrays = self.to_network_arrays(conditions, need_variables=False, where="conditions")
        self._warn_out_of_range(arrays, routes, where)
        if arrays:
            n = _rows(arrays)
        elif IC in self._shapes or SV in self._shapes:
            raise KeyError(
                f"{where}: no conditions arrived for a conditional approximator; "
                f"expected keys that the adapter routes to {sorted(self._shapes)}"
            )
        else:
            n = 1  # unconditional density
        key = as_key(seed)
        per_call = max(1, SAMPLE_CHUNK // num_samples)
        draws, log_q = [], []
        starts = range(0, n, per_call)
        show = progress and len(starts) > 1 and sys.stderr.isatty()
        sampler = core.sample_and_log_prob if with_log_prob else core.sample
        devices = parallel.sampling_devices()
        for start in tqdm(starts, desc="sampling", unit="chunk", disable=not show):
            stop = min(n, start + per_call)
            chunk, size = _row_chunk(arrays, start, stop, per_call)
            key, sub = jax.random.split(key)
            out = _draw_chunk(
                sampler, self.nets, self.stats, sub, chunk, size, num_samples, devices
            )
            if with_log_prob:
                out, lp = out
                log_q.append(np.asarray(lp, np.float64)[: stop - start])
            draws.append(np.asarray(out)[: stop - start])
        z = np.concatenate(draws, axis=0)
        return z, (np.concatenate(log_q, axis=0) if with_log_prob else None)

    def _to_user_space(self, z: np.ndarray) -> dict[str, np.ndarray]:
        if self.adapter is None:
            return {IV: z}
        out = self.adapter.inverse({IV: z})
        return {k: np.asarray(v) for k, v in out.items() if k not in NETWORK_KEYS or k == IV}

    @strict
    def log_prob(self, data: Mapping[str, Any]) -> np.ndarray:
        """log q(theta | x) in the original parameter space, ``(num_datasets,)``."""
        self._require_density("log_prob")
        if not isinstance(data, Mapping):
            raise TypeError(f"log_prob: expected a dict of arrays, got {type(data).__name__}")
        if self.adapter is not None:
            adapted, ldj = self.adapter.forward(data, strict=True, log_det_jac=True)
        else:
            adapted, ldj = dict(data), {}
        arrays = self._network_arrays(adapted, True, "log_prob data")
        lp = np.asarray(_log_prob(self.nets, self.stats, arrays), np.float64)
        if IV in ldj:
            j = np.asarray(ldj[IV], np.float64)
            lp = lp + j.reshape(j.shape[0], -1).sum(axis=1)
        return lp

    @strict
    def log_prob_of_draws(
        self, *, draws: Mapping[str, Any], conditions: Mapping[str, Any]
    ) -> np.ndarray:
        """log q(theta_s | x_i) for many draws per dataset, ``(num_datasets, num_samples)``:
        ``draws`` ``{name: (num_datasets, num_samples, *shape)}`` in the original space (as
        :meth:`sample` returns them), ``conditions`` as for :meth:`sample`. The same numbers
        as :meth:`log_prob` on the draws with each dataset repeated, but every dataset goes
        through the summary network once (importance weights need thousands of draws per
        dataset).

        >>> sim = bf.simulators.benchmarks.two_moons()
        >>> approximator = ContinuousApproximator(inference_network=bf.networks.CouplingFlow(
        ...     depth=2), adapter=bf.Adapter.create_default("theta", "x"))
        >>> history = approximator.fit(dataset=sim.sample(512, seed=0), epochs=2,
        ...                            batch_size=128, seed=0, progress=False)
        >>> data = {"x": sim.sample(3, seed=1)["x"]}
        >>> draws = approximator.sample(num_samples=100, conditions=data, seed=2)
        >>> log_q = approximator.log_prob_of_draws(draws=draws, conditions=data)
        >>> log_q.shape
        (3, 100)
        """
        self._require_density("log_prob_of_draws")
        if not isinstance(draws, Mapping) or not draws:
            raise TypeError("log_prob_of_draws: draws must be a non-empty dict of arrays")
        lead = {k: np.shape(v)[:2] for k, v in draws.items()}
        if len(set(lead.values())) != 1 or any(len(v) < 2 for v in lead.values()):
            raise ValueError(
                f"log_prob_of_draws: every draw array must lead with (num_datasets, "
                f"num_samples) and they must agree; got leading shapes {lead}"
            )
        n, s = next(iter(lead.values()))
        adapted, ldj = self._adapt_draws(draws, n, s)
        if IV not in adapted:
            raise KeyError(
                f"log_prob_of_draws: draws {sorted(draws)} do not form the inference variables"
            )
        x = jnp.asarray(np.reshape(adapted[IV], (n, s, *self._shapes[IV])), jnp.float32)
        arrays = self.to_network_arrays(conditions, need_variables=False, where="conditions")
        if arrays and _rows(arrays) != n:
            raise ValueError(
                f"log_prob_of_draws: draws hold {n} datasets but conditions hold {_rows(arrays)}"
            )
        per_call = max(1, SAMPLE_CHUNK // s)
        out = []
        for start in range(0, n, per_call):
            stop = min(n, start + per_call)
            (chunk, xs), _ = _row_chunk((arrays, x), start, stop, per_call)
            lp = _log_prob_draws(self.nets, self.stats, chunk, xs)
            out.append(np.asarray(lp, np.float64)[: stop - start])
        return np.concatenate(out, axis=0) + ldj

    @strict
    def embed(self, data: Mapping[str, Any]) -> np.ndarray:
        """What the inference network is conditioned on: standardized direct conditions and
        learned summaries, ``(num_datasets, cond_dim)`` (the space of out-of-distribution
        checks)."""
        self._require_trained("embed")
        arrays = self.to_network_arrays(data, need_variables=False, where="embed data")
        if not arrays:
            raise ValueError("embed: this approximator has no conditions")
        return np.asarray(_embed(self.nets, self.stats, arrays))

    @strict
    def summarize(self, data: Mapping[str, Any]) -> np.ndarray:
        """Learned summaries ``(num_datasets, summary_dim)`` of the summary network."""
        self._require_trained("summarize")
        if self.nets.summary is None:
            raise ValueError("summarize: this approximator has no summary network")
        arrays = self.to_network_arrays(data, need_variables=False, where="summarize data")
        return np.asarray(_summaries(self.nets, self.stats, arrays))


def _leaves(out: Mapping[str, Any]) -> dict[str, Any]:
    """Flat ``{name: array}``; a dict under a network key (several sources) gives
    ``key/source`` names."""
    flat = {}
    for k, v in out.items():
        if isinstance(v, Mapping):
            flat.update({f"{k}/{n}": a for n, a in v.items()})
        else:
            flat[k] = v
    return flat


def _shape(v: Any):
    if isinstance(v, Mapping):
        return {n: tuple(np.shape(a)) for n, a in v.items()}
    return tuple(np.shape(v))


def _check_condition_map(where: str, arrays: Mapping[str, Any], trained_target) -> None:
    """A condition map ``(batch, H, W, D)`` goes with an image target of the same height
    and width (channel-wise concatenation)."""
    if IC not in arrays or arrays[IC].ndim != 4:
        return
    target = tuple(arrays[IV].shape[1:]) if IV in arrays else trained_target
    if target is None:
        return
    if len(target) != 3 or tuple(target[:2]) != tuple(arrays[IC].shape[1:3]):
        raise ValueError(
            f"{where}: 'inference_conditions' is a condition map of shape "
            f"{tuple(arrays[IC].shape)}; it is concatenated channel-wise with the target, "
            f"which needs an image target of the same height and width, got target shape "
            f"(batch, {', '.join(map(str, target))}). Summarize image observations of a "
            f"vector target with a summary network (ConvolutionalNetwork) instead"
        )


def _check_mask(where: str, out: Mapping[str, np.ndarray]) -> None:
    """``summary_mask`` must be ``(B, N)`` of 0/1 matching the summary variables' rows, and
    every dataset needs at least one observed row (per source when both are dicts)."""
    if SV not in out:
        raise KeyError(f"{where}: 'summary_mask' arrived without 'summary_variables'")
    mask, sv = out[SM], out[SV]
    if isinstance(mask, Mapping) or isinstance(sv, Mapping):
        if not (isinstance(mask, Mapping) and isinstance(sv, Mapping)) or not set(mask) <= set(sv):
            raise ValueError(
                f"{where}: with several sources, 'summary_mask' must be a dict whose keys are "
                f"among the sources of 'summary_variables' {sorted(_shape(sv))}; got "
                f"{_shape(mask)}"
            )
        for n in mask:
            _check_mask(f"{where} (source {n!r})", {SM: mask[n], SV: sv[n]})
        return
    if mask.ndim != 2 or mask.shape != sv.shape[:2]:
        raise ValueError(
            f"{where}: 'summary_mask' must have shape (batch, N) = {sv.shape[:2]} to match "
            f"'summary_variables' {sv.shape}, got {mask.shape}"
        )
    if not np.all((mask == 0) | (mask == 1)):
        raise ValueError(f"{where}: 'summary_mask' must hold only 0 and 1")
    empty = np.flatnonzero(mask.sum(axis=1) == 0)
    if empty.size:
        raise ValueError(
            f"{where}: {empty.size} dataset(s) have no observed rows in 'summary_mask' "
            f"(all missing), e.g. index {int(empty[0])}; remove them or observe at least one row"
        )


def _nonfinite_keys(data: Mapping[str, Any]) -> list[str]:
    bad = []
    for k, v in data.items():
        v = np.asarray(v)
        if np.issubdtype(v.dtype, np.number) and not np.all(np.isfinite(v)):
            bad.append(k)
    return bad


def _describe_nonfinite(data: Mapping[str, Any], key: str) -> str:
    try:
        check_finite("input", key, np.asarray(data[key]))
    except ValueError as e:
        return str(e).split(". Remove")[0].removeprefix("input: ")
    return ""


def _rows(arrays: Mapping[str, Any]) -> int:
    return int(jax.tree.leaves(arrays)[0].shape[0])


def _pad_rows(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` with its last row repeated up to ``size`` rows."""
    if a.shape[0] == size:
        return a
    pad = np.broadcast_to(a[-1:], (size - a.shape[0],) + a.shape[1:])
    return np.concatenate([a, pad], axis=0)
