"""ModelComparisonSimulator: simulations from several models, labelled by the model.

Amortized model comparison trains a classifier on ``(x, m)`` pairs where the model index
``m`` is drawn from prior model probabilities ``p`` and ``x`` from model ``m``; the
classifier's output then approximates the posterior model probabilities ``p(m | x)``
(under ``p``), from which Bayes factors follow (Radev et al. 2021; Elsemüller et al. 2023).
Each ``sample`` call draws the model of every row, runs each model once on its rows, and
returns the outputs in row order with ``"model_indices"`` ``(batch, num_models)`` one-hot.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import check_choice, strict
from .simulator import SimulationError, Simulator, _accepted_args

KEY_CONFLICTS = ("error", "drop", "fill")
MODEL_INDICES = "model_indices"


def _seeds(seed: int | None, num: int) -> list[int]:
    """``num`` independent 31-bit seeds split from ``seed`` (SeedSequence children)."""
    children = np.random.SeedSequence(seed).spawn(num)
    return [int(c.generate_state(1)[0] & 0x7FFFFFFF) for c in children]


def _inputs(fn: Callable) -> tuple[set[str], bool]:
    """Names a simulator (or a plain function) takes, and whether it takes anything."""
    if isinstance(fn, Simulator):
        return fn.input_names()
    return _accepted_args(fn)


def _probabilities(p, logits, num: int) -> np.ndarray:
    if p is not None and logits is not None:
        raise ValueError("ModelComparisonSimulator: give p or logits, not both")
    if p is None and logits is None:
        return np.full(num, 1.0 / num)
    if p is not None:
        probs = np.asarray(p, dtype=np.float64)
        what = "p"
    else:
        z = np.asarray(logits, dtype=np.float64)
        probs, what = np.exp(z - np.max(z)) / np.sum(np.exp(z - np.max(z))), "logits"
    if probs.shape != (num,):
        raise ValueError(
            f"ModelComparisonSimulator: {what} must have one entry per simulator ({num}), "
            f"got shape {probs.shape}"
        )
    if not np.all(np.isfinite(probs)) or np.any(probs <= 0) or not np.isclose(probs.sum(), 1):
        raise ValueError(
            f"ModelComparisonSimulator: p must be positive and sum to 1 (a model with "
            f"probability 0 is never simulated, so nothing can be learned about it), got "
            f"{probs.tolist()}"
        )
    return probs / probs.sum()


def _per_row(out: Mapping[str, Any], rows: int) -> dict[str, np.ndarray]:
    """A model's outputs with one value per row (a meta_fn output, shared by the call,
    repeated on each row, as ``sample_ragged`` does)."""
    res = {}
    for k, v in out.items():
        v = np.asarray(v)
        res[k] = v if v.shape[:1] == (rows,) else np.broadcast_to(v, (rows,) + (v.shape or (1,)))
    return res


class ModelComparisonSimulator(Simulator):
    """Simulations from several models with the model of each row in ``"model_indices"``.

    Parameters
    ----------
    simulators : sequence of Simulator
        One per model (``bf.make_simulator(...)``); models may have different parameters,
        but the outputs the networks see must have the same names and shapes.
    p : sequence of float, optional
        Prior model probabilities (default uniform); also the training frequencies, which
        :class:`~amortized.approximators.ModelComparisonApproximator` divides out of its
        Bayes factors. ``logits`` gives them on the log scale instead.
    use_mixed_batches : bool, default True
        Each row's model drawn independently. False: every ``sample`` call draws one model
        for all its rows (BayesFlow's faster mode); training then simulates batch by batch
        (``sample_ragged`` with the batch size), so batches still mix across the epoch.
    shared_simulator : Simulator or callable, optional
        Outputs shared by every model (a context such as the number of observations ``N``):
        run first, then passed to each model that takes them (per row where they have the
        batch leading, else to every row) and returned. A function is called with
        whichever of ``batch_shape``, ``batch_size`` and ``rng`` it takes.
    key_conflicts : {"error", "drop", "fill"}, default "error"
        When the models that ran in one call return different output names: raise (the
        default: data are never dropped silently), drop the names not all returned (with a
        warning naming them), or fill the missing rows with ``fill_value``.

    Examples
    --------
    >>> m0 = bf.make_simulator([lambda: {"mu": 0.0}, lambda mu: {"x": mu + np.random.normal()}])
    >>> m1 = bf.make_simulator([lambda: {"mu": np.random.normal()},
    ...                         lambda mu: {"x": mu + np.random.normal()}])
    >>> sim = bf.simulators.ModelComparisonSimulator([m0, m1])
    >>> d = sim.sample(6, seed=0)
    >>> d["model_indices"].shape, d["x"].shape, d["model_indices"].sum(axis=1).tolist()
    ((6, 2), (6, 1), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    """

    @strict
    def __init__(
        self,
        simulators: Sequence[Simulator],
        p: Sequence[float] | None = None,
        logits: Sequence[float] | None = None,
        use_mixed_batches: bool = True,
        shared_simulator: Simulator | Callable | None = None,
        key_conflicts: str = "error",
        fill_value: float = float("nan"),
    ):
        sims = list(simulators)
        if len(sims) < 2:
            raise ValueError(
                f"ModelComparisonSimulator: needs at least two simulators, got {len(sims)}"
            )
        for i, s in enumerate(sims):
            if not isinstance(s, Simulator):
                raise TypeError(
                    f"ModelComparisonSimulator: simulators[{i}] must be a Simulator "
                    f"(bf.make_simulator), got {type(s).__name__}"
                )
        if shared_simulator is not None and not callable(shared_simulator):
            raise TypeError(
                f"ModelComparisonSimulator: shared_simulator must be a Simulator or a "
                f"function, got {type(shared_simulator).__name__}"
            )
        check_choice("ModelComparisonSimulator", "key_conflicts", key_conflicts, KEY_CONFLICTS)
        self.simulators = sims
        self.p = _probabilities(p, logits, len(sims))
        self.use_mixed_batches = bool(use_mixed_batches)
        self.shared_simulator = shared_simulator
        self.key_conflicts = key_conflicts
        self.fill_value = float(fill_value)
        # Simulator's own attributes, for code that inspects any simulator
        self.fns, self.is_batched, self.nonfinite = [], [], "raise"
        self.meta_fn = None

    @property
    def num_models(self) -> int:
        return len(self.simulators)

    @property
    def varies_per_call(self) -> bool:
        """One model per call, or a context drawn per call: simulate batch by batch."""
        shared = self.shared_simulator
        return (
            not self.use_mixed_batches
            or any(s.varies_per_call for s in self.simulators)
            or (
                shared is not None and (not isinstance(shared, Simulator) or shared.varies_per_call)
            )
        )

    def input_names(self) -> tuple[set[str], bool]:
        parts = [_inputs(s) for s in self.simulators]
        if self.shared_simulator is not None:
            parts.append(_inputs(self.shared_simulator))
        return set().union(*(n for n, _ in parts)), any(v for _, v in parts)

    # -- sampling ----------------------------------------------------------------------
    def sample(
        self, batch_shape: int | tuple[int, ...], seed: int | None = None, **fixed: Any
    ) -> dict[str, np.ndarray]:
        """``batch_shape`` rows (an int or a 1-tuple), each from the model in its
        ``"model_indices"`` row; the same seed gives the same rows.

        ``fixed`` keywords go to the shared simulator and to every model that takes them
        as an argument; one that no function takes fixes an output of that name in every
        model (each model raises when it neither takes nor returns it)."""
        n = self._rows(batch_shape)
        s_pick, s_shared, *s_models = _seeds(seed, 2 + self.num_models)
        shared = self._shared(n, s_shared, fixed)
        rng = np.random.default_rng(s_pick)
        if self.use_mixed_batches:
            labels = rng.choice(self.num_models, size=n, p=self.p)
        else:
            labels = np.full(n, rng.choice(self.num_models, p=self.p))
        parts = {}
        for m in np.unique(labels):
            rows = np.flatnonzero(labels == m)
            given = self._model_inputs(self.simulators[m], shared, fixed, rows, n)
            try:
                sims = self.simulators[m].sample(len(rows), seed=s_models[m], **given)
            except SimulationError as e:
                raise SimulationError(f"ModelComparisonSimulator, model {m}: {e}") from e
            parts[int(m)] = (rows, sims)
        out = self._combine(parts, n)
        for k, v in shared.items():
            out.setdefault(k, v)
        out[MODEL_INDICES] = np.eye(self.num_models, dtype=np.float32)[labels]
        return out

    @staticmethod
    def _rows(batch_shape) -> int:
        shape = (batch_shape,) if isinstance(batch_shape, int | np.integer) else tuple(batch_shape)
        if len(shape) != 1 or int(shape[0]) <= 0:
            raise ValueError(
                f"ModelComparisonSimulator.sample: batch_shape must be a positive number of "
                f"rows, got {batch_shape!r}"
            )
        return int(shape[0])

    def _shared(self, n: int, seed: int, fixed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        sim = self.shared_simulator
        if sim is None:
            return {}
        names, var_kw = _inputs(sim)
        given = {k: v for k, v in fixed.items() if var_kw or k in names}
        if isinstance(sim, Simulator):
            return sim.sample(n, seed=seed, **given)
        rng = np.random.default_rng(seed)
        extra = {"batch_shape": (n,), "batch_size": n, "rng": rng}
        extra = {k: v for k, v in extra.items() if var_kw or k in names}
        saved = np.random.get_state()
        np.random.seed(int(rng.integers(2**32 - 1)))
        try:
            out = sim(**given, **extra)
        except Exception as e:
            raise SimulationError(f"shared_simulator raised {type(e).__name__}: {e}") from e
        finally:
            np.random.set_state(saved)
        if not isinstance(out, Mapping):
            raise SimulationError(
                f"shared_simulator must return a dict of outputs, got {type(out).__name__}"
            )
        return {k: np.asarray(v) for k, v in out.items()}

    def _model_inputs(self, sim, shared, fixed, rows, n) -> dict[str, Any]:
        names, var_kw = sim.input_names()
        anywhere, _ = self.input_names()
        given = {k: v for k, v in fixed.items() if var_kw or k in names or k not in anywhere}
        for k, v in shared.items():
            if not (var_kw or k in names):
                continue
            v = np.asarray(v)
            if v.ndim >= 1 and v.shape[0] == n:  # one value per row: this model's rows
                v = v[rows]
                if v.ndim == 2 and v.shape[1] == 1:  # a scalar per row, as a function sees it
                    v = v[:, 0]
            given[k] = v
        return given

    def _combine(self, parts: dict[int, tuple[np.ndarray, dict]], n: int) -> dict[str, np.ndarray]:
        parts = {m: (rows, _per_row(out, len(rows))) for m, (rows, out) in parts.items()}
        keys = {m: set(out) for m, (_, out) in parts.items()}
        common = set.intersection(*keys.values())
        every = set.union(*keys.values())
        if every != common:
            by_model = {m: sorted(every - k) for m, k in keys.items() if every - k}
            if self.key_conflicts == "error":
                raise SimulationError(
                    f"ModelComparisonSimulator: the models return different outputs (missing "
                    f"per model: {by_model}); make them return the same names, or pass "
                    f"key_conflicts='drop' (drop {sorted(every - common)}) or 'fill'"
                )
            if self.key_conflicts == "drop":
                warnings.warn(
                    f"ModelComparisonSimulator: dropping outputs {sorted(every - common)} that "
                    f"not every model returns (missing per model: {by_model})",
                    stacklevel=3,
                )
        names = sorted(common if self.key_conflicts != "fill" else every)
        out = {}
        for k in names:
            shapes = {m: np.shape(o[k])[1:] for m, (_, o) in parts.items() if k in o}
            if len(set(shapes.values())) > 1:
                raise SimulationError(
                    f"ModelComparisonSimulator: output {k!r} has different shapes per model "
                    f"{ {m: (len(parts[m][0]), *s) for m, s in shapes.items()} }; a size "
                    f"shared by all models (such as N) belongs in shared_simulator"
                )
            shape = next(iter(shapes.values()))
            dtypes = [o[k].dtype for _, o in parts.values() if k in o]
            if len(dtypes) == len(parts):
                arr = np.empty((n, *shape), dtype=np.result_type(*dtypes))
            else:  # filled rows: a float array holds fill_value
                arr = np.full((n, *shape), self.fill_value, np.result_type(*dtypes, np.float32))
            for rows, o in parts.values():
                if k in o:
                    arr[rows] = o[k]
            out[k] = arr
        return out
