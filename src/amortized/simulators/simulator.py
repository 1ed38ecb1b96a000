"""Compose sampling functions by argument name into one simulator.

``make_simulator([prior, likelihood])`` builds a :class:`Simulator` whose ``sample(n)`` calls
``prior()`` then ``likelihood(**prior_outputs)`` and returns every output stacked with the batch
shape leading. Functions receive earlier outputs, ``meta_fn`` outputs and user keywords by
argument name; arguments they do not name are not passed.

Randomness: per-draw NumPy functions usually call the global ``np.random``; ``sample(seed=)``
seeds it for the call and restores the previous state afterwards, so results are reproducible
without touching the user's global stream. A function may instead take ``rng`` (a
``np.random.Generator``) or ``key`` (a JAX PRNG key) and gets one.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from .._validation import check_choice, check_keywords

_SPECIAL_ARGS = ("rng", "key", "batch_shape", "batch_size")
NONFINITE_POLICIES = ("raise", "warn", "keep")


class SimulationError(RuntimeError):
    """A simulator function raised or returned something unusable."""


#: ``sample`` warns from this many draws on when a meta_fn makes all of them share one size.
SHARED_META_WARN = 1024


class SharedMetaWarning(UserWarning):
    """Many draws of one ``sample`` call share a single ``meta_fn`` draw."""


def _accepted_args(fn: Callable) -> tuple[set[str], bool]:
    params = inspect.signature(fn).parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    names = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, var_kw


def _fn_name(fn: Callable) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


class Simulator:
    """A composed simulator; build it with :func:`make_simulator`.

    ``sample(batch_shape, seed=None, **fixed)`` returns ``{name: array}`` with ``batch_shape``
    leading every array (a scalar per draw has shape ``(*batch_shape, 1)``) except
    ``meta_fn`` outputs, which are shared by the whole batch and returned as they are.
    """

    def __init__(
        self,
        fns: Sequence[Callable],
        meta_fn: Callable | None = None,
        is_batched: bool | Sequence[bool] = False,
        nonfinite: str = "raise",
    ):
        if callable(fns):
            fns = [fns]
        fns = list(fns)
        if not fns:
            raise ValueError("make_simulator: expected at least one function, got none")
        for f in fns:
            if not callable(f):
                raise TypeError(f"make_simulator: expected callables, got {type(f).__name__}")
        if isinstance(is_batched, bool):
            is_batched = [is_batched] * len(fns)
        if len(is_batched) != len(fns):
            raise ValueError(
                f"make_simulator: is_batched has {len(is_batched)} entries for {len(fns)} functions"
            )
        check_choice("make_simulator", "nonfinite", nonfinite, NONFINITE_POLICIES)
        self.fns = fns
        #: the context variables among the outputs and what they range over (set by
        #: power_scaling and Multiverse; saved with a workflow trained on them)
        self.context: dict[str, Any] | None = None
        self.meta_fn = meta_fn
        self.is_batched = list(is_batched)
        self.nonfinite = nonfinite

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _call(
        fn: Callable, available: Mapping[str, Any], where: str, used: set | None = None
    ) -> dict:
        names, var_kw = _accepted_args(fn)
        kwargs = dict(available) if var_kw else {k: v for k, v in available.items() if k in names}
        if used is not None:
            used.update(kwargs)
        try:
            out = fn(**kwargs)
        except Exception as e:  # re-raised with the function and draw named
            raise SimulationError(f"{where} raised {type(e).__name__}: {e}") from e
        if not isinstance(out, Mapping):
            raise SimulationError(
                f"{where} must return a dict of outputs, got {type(out).__name__}"
            )
        if used is not None:
            used.update(out)
        return dict(out)

    @staticmethod
    def _extras(fn, rng: np.random.Generator, key, batch_shape) -> dict:
        names, _ = _accepted_args(fn)
        extra = {}
        if "rng" in names:
            extra["rng"] = rng
        if "key" in names:
            extra["key"] = key
        if "batch_shape" in names:
            extra["batch_shape"] = batch_shape
        if "batch_size" in names:
            extra["batch_size"] = int(np.prod(batch_shape))
        return extra

    @property
    def varies_per_call(self) -> bool:
        """Whether one ``sample`` call shares a random draw between all its rows (a
        ``meta_fn``), so that training simulates batch by batch (``sample_ragged``)."""
        return self.meta_fn is not None

    def input_names(self) -> tuple[set[str], bool]:
        """The names the simulator's functions take as arguments (besides ``rng``,
        ``key``, ``batch_shape``, ``batch_size``), and whether one takes any keyword."""
        names: set[str] = set()
        var_kw = False
        for fn in [*self.fns, *([self.meta_fn] if self.meta_fn is not None else [])]:
            args, var = _accepted_args(fn)
            names |= args
            var_kw = var_kw or var
        return names - set(_SPECIAL_ARGS), var_kw

    # -- public ------------------------------------------------------------------------
    def sample(
        self,
        batch_shape: int | tuple[int, ...],
        seed: int | None = None,
        *,
        client: Any = None,
        chunk_size: int | None = None,
        progress: bool = True,
        **fixed: Any,
    ) -> dict[str, np.ndarray]:
        """Simulate ``batch_shape`` draws.

        Parameters
        ----------
        batch_shape : int or tuple of int
            Number of draws (or their shape); leads every returned array.
        seed : int, optional
            Seeds NumPy's global generator for this call (the previous state is restored),
            the ``rng`` generator and the ``key`` passed to functions that ask for them.
        client : dask.distributed.Client, optional
            Run the chunks as tasks on this Dask cluster (:mod:`amortized.simulators.
            chunked`): the same draws as a local run with the same ``seed`` and
            ``chunk_size`` (default 1000 with a client), whatever the number of workers; a
            worker that dies has its chunks rerun.
        chunk_size : int, optional
            Simulate in chunks of this many draws, each with its own seed split from
            ``seed`` (locally without a client; the draws differ from the unchunked call's).
        progress : bool, default True
            A progress bar over the chunks (chunked or Dask runs).
        **fixed
            Fix a variable or pass an input: an array whose leading shape equals
            ``batch_shape`` gives each draw its own value, anything else is shared by all
            draws. Fixed values replace the outputs of the same name.

        Examples
        --------
        >>> sim = make_simulator([lambda: {"theta": np.random.normal()},
        ...                       lambda theta: {"x": theta + np.random.normal()}])
        >>> sim.sample(3, seed=0)["x"].shape   # a scalar per draw gets a trailing axis
        (3, 1)
        """
        if client is not None or chunk_size is not None:
            from .chunked import sample_in_chunks

            return sample_in_chunks(self, batch_shape, seed, chunk_size, client, fixed, progress)
        if isinstance(batch_shape, int | np.integer):
            batch_shape = (int(batch_shape),)
        batch_shape = tuple(int(b) for b in batch_shape)
        if not batch_shape or any(b <= 0 for b in batch_shape):
            raise ValueError(f"Simulator.sample: batch_shape must be positive, got {batch_shape}")
        n = int(np.prod(batch_shape))
        rng = np.random.default_rng(seed)
        key = jax.random.key(int(rng.integers(0, 2**31 - 1)))
        saved = np.random.get_state()
        np.random.seed(int(rng.integers(0, 2**32 - 1)))
        try:
            return self._sample(batch_shape, n, rng, key, fixed)
        finally:
            np.random.set_state(saved)

    def sample_to_disk(
        self,
        path: Any,
        num: int,
        seed: int | None = None,
        *,
        chunk_size: int = 1000,
        client: Any = None,
        **fixed: Any,
    ):
        """Simulate ``num`` draws into a chunked array store at ``path`` (zarr, one array
        per output, ``chunk_size`` rows per chunk), one chunk in memory at a time: the
        draws of ``sample(num, seed, chunk_size=chunk_size)``, simulated locally or on
        Dask (``client``). Train on it with ``BasicWorkflow.fit_disk(path)``
        (:mod:`amortized.training.zarr_bank`). Returns the path."""
        from ..training.zarr_bank import write_bank
        from .chunked import check_sizes

        num, chunk_size = check_sizes(num, chunk_size)
        return write_bank(self, path, num, seed, chunk_size, client, fixed)

    def _sample(self, batch_shape, n, rng, key, fixed) -> dict[str, np.ndarray]:
        # names that some function takes as an argument or returns: a fixed keyword
        # outside this set reaches nothing (a misspelled variable would stay random)
        used: set[str] = set()
        meta = {}
        if self.meta_fn is not None:
            meta = self._call(self.meta_fn, {}, f"meta_fn {_fn_name(self.meta_fn)!r}", used)
            if n >= SHARED_META_WARN and meta:
                warnings.warn(
                    f"Simulator.sample: all {n} draws share one meta_fn draw "
                    f"({', '.join(f'{k}={np.asarray(v).tolist()}' for k, v in meta.items())}); "
                    f"to train on varying sizes, simulate with "
                    f"sample_ragged({n}, chunk_size=...) (one meta draw per chunk, padded "
                    f"with a mask)",
                    SharedMetaWarning,
                    stacklevel=4,
                )
        per_draw = {}  # name -> (n, ...) arrays
        shared = dict(meta)
        for k, v in fixed.items():
            v = np.asarray(v)
            if v.shape[: len(batch_shape)] == batch_shape and v.ndim >= len(batch_shape):
                per_draw[k] = v.reshape((n,) + v.shape[len(batch_shape) :])
            else:
                shared[k] = v
        fixed_names = set(fixed)

        for i, (fn, batched) in enumerate(zip(self.fns, self.is_batched, strict=True)):
            key, sub = jax.random.split(key)
            name = f"simulator function {i} ({_fn_name(fn)!r})"
            extra = self._extras(fn, rng, sub, batch_shape)
            if batched:
                avail = shared | {
                    k: v.reshape(batch_shape + v.shape[1:]) for k, v in per_draw.items()
                }
                out = self._call(fn, avail | extra, name, used)
                self._promote_fixed(out, shared, per_draw, n)
                out = {k: v for k, v in out.items() if k not in fixed_names}
                for k, v in out.items():
                    v = np.asarray(v)
                    if v.shape[: len(batch_shape)] != batch_shape:
                        raise SimulationError(
                            f"{name} is batched but output {k!r} has shape {v.shape}; "
                            f"expected batch shape {batch_shape} leading"
                        )
                    per_draw[k] = v.reshape((n,) + v.shape[len(batch_shape) :])
            else:
                rows: dict[str, list] = {}
                for j in range(n):
                    avail = shared | {k: v[j] for k, v in per_draw.items()}
                    out = self._call(
                        fn, avail | extra, f"{name} at draw {j}", used if j == 0 else None
                    )
                    if j == 0:
                        self._promote_fixed(out, shared, per_draw, n)
                    for k, v in out.items():
                        if k in fixed_names:
                            continue
                        rows.setdefault(k, []).append(np.asarray(v))
                for k, vs in rows.items():
                    shapes = {v.shape for v in vs}
                    if len(shapes) > 1:
                        raise SimulationError(
                            f"{name}: output {k!r} changes shape between draws: "
                            f"{sorted(shapes)}; pad it to a fixed shape or use meta_fn "
                            f"for a shared size"
                        )
                    per_draw[k] = np.stack(vs)
        self._check_fixed_used(fixed_names, used)

        # A scalar per draw becomes (*batch_shape, 1) so that variables concatenate along
        # the last axis, as BayesFlow users expect.
        result = {k: v.reshape(batch_shape + (v.shape[1:] or (1,))) for k, v in per_draw.items()}
        for k, v in shared.items():
            result.setdefault(k, v)
        self._check_finite(result)
        return result

    def _check_fixed_used(self, fixed_names: set[str], used: set[str]) -> None:
        """Raise when a fixed keyword was taken or returned by no function."""
        unknown = sorted(fixed_names - used)
        if unknown:
            variables = sorted(used - fixed_names - set(_SPECIAL_ARGS))
            raise KeyError(
                f"Simulator.sample: keyword(s) {unknown} are neither an argument nor an "
                f"output of any simulator function, so fixing them would change nothing; "
                f"the simulator's variables are {variables}"
            )

    @staticmethod
    def _promote_fixed(out, shared, per_draw, n) -> None:
        """A shared fixed value that replaces a function output becomes one value per draw,
        so later functions (batched or not) see it like the output it replaces."""
        for k in out:
            if k in shared:
                v = np.asarray(shared.pop(k))
                per_draw[k] = np.broadcast_to(v, (n,) + v.shape)

    def _check_finite(self, result: Mapping[str, np.ndarray]) -> None:
        if self.nonfinite == "keep":
            return
        for k, v in result.items():
            v = np.asarray(v)
            if not np.issubdtype(v.dtype, np.number):
                continue
            bad = ~np.isfinite(v)
            if bad.any():
                rows = bad.reshape(bad.shape[0], -1).any(axis=1) if v.ndim else bad
                msg = (
                    f"Simulator: output {k!r} has non-finite values in {int(np.sum(rows))} "
                    f"of {rows.size} draws (first at draw {int(np.argmax(rows))})"
                )
                if self.nonfinite == "raise":
                    raise SimulationError(
                        msg + "; fix the simulator, or pass nonfinite='warn' to "
                        "make_simulator and handle them downstream"
                    )
                warnings.warn(msg, stacklevel=3)

    def sample_ragged(
        self,
        num: int,
        chunk_size: int = 32,
        seed: int | None = None,
        mask_key: str = "mask",
        pad_to: int | None = None,
        **fixed: Any,
    ) -> dict[str, np.ndarray]:
        """``num`` draws simulated in chunks of ``chunk_size``, each chunk with its own
        ``meta_fn`` draw (e.g. its own number of observations N), padded into one array.

        Outputs whose axis 1 changes between chunks are zero-padded to a common length and
        ``mask_key`` ``(num, length)`` marks the observed positions (route it with
        ``BasicWorkflow(summary_mask=mask_key)``). ``meta_fn`` outputs become one value per
        draw. See :mod:`amortized.simulators.ragged`.

        >>> sim = make_simulator([lambda N: {"x": np.random.normal(size=(N, 1))}],
        ...                      meta_fn=lambda: {"N": np.random.randint(5, 20)})
        >>> d = sim.sample_ragged(64, chunk_size=16, seed=0)
        >>> d["x"].shape[0], d["mask"].shape[0], d["N"].shape
        (64, 64, (64, 1))
        """
        from .ragged import pad_ragged

        if isinstance(num, bool) or not isinstance(num, int | np.integer) or num <= 0:
            raise ValueError(f"Simulator.sample_ragged: num must be a positive int, got {num!r}")
        if (
            isinstance(chunk_size, bool)
            or not isinstance(chunk_size, int | np.integer)
            or (chunk_size <= 0)
        ):
            raise ValueError(
                f"Simulator.sample_ragged: chunk_size must be a positive int, got {chunk_size!r}"
            )
        rng = np.random.default_rng(seed)
        chunks = []
        for start in range(0, int(num), int(chunk_size)):
            size = min(int(chunk_size), int(num) - start)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SharedMetaWarning)
                d = self.sample(size, seed=int(rng.integers(2**31)), **fixed)
            for k, v in d.items():
                v = np.asarray(v)
                if v.shape[:1] != (size,):  # shared (meta) value: one per draw
                    d[k] = np.broadcast_to(v, (size,) + (v.shape or (1,)))
            chunks.append(d)
        return pad_ragged(chunks, mask_key=mask_key, pad_to=pad_to)

    def __call__(self, batch_shape, seed=None, **fixed):
        return self.sample(batch_shape, seed=seed, **fixed)


def make_simulator(
    sample_fn: Callable | Sequence[Callable],
    meta_fn: Callable | None = None,
    **kwargs: Any,
) -> Simulator:
    """Build a :class:`Simulator` from one function or a list composed by argument name.

    Parameters
    ----------
    sample_fn : callable or list of callables
        Each returns a dict. Later functions receive earlier outputs as keyword arguments.
    meta_fn : callable, optional
        Called once per ``sample()`` call; its outputs (e.g. a random sample size ``N``) are
        passed to every function and shared by the whole batch.
    is_batched : bool or list of bool, default False
        Batched functions are called once with the whole batch (they may take
        ``batch_shape``, ``batch_size``, ``rng`` or ``key``); others once per draw.
    nonfinite : {"raise", "warn", "keep"}, default "raise"
        What to do when an output holds NaN or infinity.

    Examples
    --------
    >>> def prior():
    ...     return {"theta": np.random.normal(size=2)}
    >>> def likelihood(theta):
    ...     return {"x": theta + 0.1 * np.random.normal(size=2)}
    >>> simulator = make_simulator([prior, likelihood])
    >>> simulator.sample(100, seed=1)["x"].shape
    (100, 2)
    """
    check_keywords("make_simulator", kwargs, ["is_batched", "nonfinite"])
    return Simulator(sample_fn, meta_fn=meta_fn, **kwargs)
