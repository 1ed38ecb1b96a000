"""Data-parallel training steps over the local devices, and splitting a CPU into devices.

A training batch of B rows is split into D equal shards, one per local device; each device
computes the loss and gradient of its shard and the gradients are averaged (``pmean``), so
the update is that of the whole batch's mean loss:

    grad (1/B) sum_i l_i = (1/D) sum_d grad (1/(B/D)) sum_{i in shard d} l_i.

On a CPU, XLA runs the small matrix products of a training step (a few hundred rows of width
128) on one core, whatever the number of cores; splitting the CPU into one JAX device per
core (:func:`set_cpu_devices`) lets every core work on its own shard (the speed-up is in
BENCHMARKS.md). It gains less where one device already keeps every core busy (large
batches of wide layers). Several GPUs are used the same way with no set-up.

Dropout draws its masks per device (the step's key folded with the device index), so a run
is reproducible for a given number of devices, and differs between device counts.

Several processes (hosts, or one process per GPU) train one model the same way once each
calls ``jax.distributed.initialize(...)`` before anything else runs on JAX: the mesh then
spans every process's devices, each process runs the same program on the same training data
(same seed), the networks and optimizer state are replicated over all devices, and each
device computes its share of every batch; the gradient mean crosses processes. The result
is the single-process run's on as many devices. Simulating or loading the same data in
every process repeats that work, which is the price of a loop that needs no coordination
beyond the gradient mean. After training, each process holds its own copy of the networks.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
_EIGEN_FLAG = "--xla_cpu_multi_thread_eigen"
#: Devices made by default. Measured on 2 cores only; every step waits for all devices to
#: average the gradients, and a default batch of 128-256 rows split over more than 8 leaves
#: each device a few rows, so many-core machines get 8 unless asked for more.
DEFAULT_MAX_DEVICES = 8


def set_cpu_devices(num_devices: int | None = None) -> int:
    """Split the CPU into ``num_devices`` JAX devices (default: one per available core, at
    most ``DEFAULT_MAX_DEVICES`` = 8), so that training runs data-parallel across the cores.

    Sets ``XLA_FLAGS`` (``--xla_force_host_platform_device_count=n`` and, with more than one
    device, ``--xla_cpu_multi_thread_eigen=false``: each device then computes on one
    thread instead of all devices sharing one pool). XLA reads these flags when JAX starts
    its first computation, so call this at the top of a script, before anything runs on
    JAX; later it raises. Returns the number of devices.

    >>> import amortized as bf
    >>> bf.set_cpu_devices()  # doctest: +SKIP
    2
    """
    if num_devices is None:
        num_devices = min(max(1, _cores()), DEFAULT_MAX_DEVICES)
    if isinstance(num_devices, bool) or not isinstance(num_devices, int | np.integer):
        raise TypeError(
            f"set_cpu_devices: num_devices must be a positive int or None, got {num_devices!r}"
        )
    if num_devices < 1:
        raise ValueError(f"set_cpu_devices: num_devices must be >= 1, got {num_devices}")
    if jax_started():
        have = jax.device_count("cpu") if jax.default_backend() == "cpu" else None
        if have == num_devices:
            return int(num_devices)
        raise RuntimeError(
            "set_cpu_devices: JAX has already started (some computation ran before this "
            f"call; the CPU has {have} device(s)), so XLA will not read new flags. Call "
            "bf.set_cpu_devices() at the top of the script, before anything runs on JAX, or "
            f"set XLA_FLAGS='{_DEVICE_COUNT_FLAG}={num_devices}' in the environment."
        )
    flags = os.environ.get("XLA_FLAGS", "")
    flags = re.sub(rf"{_DEVICE_COUNT_FLAG}=\S*|{_EIGEN_FLAG}=\S*", "", flags).split()
    flags.append(f"{_DEVICE_COUNT_FLAG}={int(num_devices)}")
    if num_devices > 1:
        flags.append(f"{_EIGEN_FLAG}=false")
    os.environ["XLA_FLAGS"] = " ".join(flags)
    return int(num_devices)


#: Environment variable: the number of CPU devices ``import amortized`` splits the CPU into
#: (``1``: no split, the opt-out); unset: one per core, at most ``DEFAULT_MAX_DEVICES``.
CPU_DEVICES_ENV = "AMORTIZED_CPU_DEVICES"


class CpuSplitNote(UserWarning):
    """``import amortized`` could not split the CPU into devices (JAX had started)."""


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def split_cpu_by_default() -> int | None:
    """What ``import amortized`` does: split the CPU into one JAX device per core (see
    :func:`set_cpu_devices`), so that training is data-parallel without a call.

    Not done when ``AMORTIZED_CPU_DEVICES`` says otherwise (``1`` opts out, ``n`` asks for
    n devices), when ``XLA_FLAGS`` already sets a device count (the user's choice wins),
    or on a single core. When JAX has already started (something ran on JAX before the
    import), XLA no longer reads flags: a :class:`CpuSplitNote` says so and how to get the
    faster path. Returns the number of devices set, or ``None`` when nothing was set.
    """
    env = os.environ.get(CPU_DEVICES_ENV, "").strip()
    if env:
        try:
            wanted = int(env)
        except ValueError:
            raise ValueError(
                f"{CPU_DEVICES_ENV} must be a positive integer (1: do not split the CPU), "
                f"got {env!r}"
            ) from None
        if wanted < 1:
            raise ValueError(f"{CPU_DEVICES_ENV} must be a positive integer, got {env!r}")
    else:
        wanted = min(_cores(), DEFAULT_MAX_DEVICES)
    if wanted == 1 or _DEVICE_COUNT_FLAG in os.environ.get("XLA_FLAGS", ""):
        return None
    if jax_started():
        if jax.default_backend() == "cpu" and jax.device_count() == 1:
            warnings.warn(
                f"JAX had already started when amortized was imported, so the CPU stays one "
                f"device and training uses one core's worth of matrix work ({_cores()} cores "
                f"here). Import amortized before running anything on JAX (or call "
                f"bf.set_cpu_devices() first) for data-parallel training over the cores; "
                f"set {CPU_DEVICES_ENV}=1 to silence this.",
                CpuSplitNote,
                stacklevel=3,
            )
        return None
    return set_cpu_devices(wanted)


def training_devices(batch_size: int) -> tuple[Any, ...] | None:
    """The devices to split a batch of ``batch_size`` rows over: as many as divide the batch
    evenly (fewer than all warns), or ``None`` for one device. With several processes
    (``jax.distributed``) the devices of all of them, which must all be used."""
    devices = tuple(jax.devices())
    use = max(d for d in range(1, len(devices) + 1) if batch_size % d == 0)
    if use < len(devices) and jax.process_count() > 1:
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {len(devices)} devices of the "
            f"{jax.process_count()} processes; choose a multiple of {len(devices)}"
        )
    if use < len(devices):
        warnings.warn(
            f"batch_size={batch_size} is not divisible by the {len(devices)} local devices; "
            f"training on {use} of them. Choose a multiple of {len(devices)} to use all.",
            stacklevel=3,
        )
    return devices[:use] if use > 1 else None


def jax_started() -> bool:
    """Whether JAX has started its backends (after which XLA flags no longer apply)."""
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def sampling_devices() -> tuple[Any, ...] | None:
    """The local devices that share the draws of one sampling call (``None``: one)."""
    devices = tuple(jax.local_devices())
    return devices if len(devices) > 1 else None


def _mesh(devices: Sequence[Any]) -> Mesh:
    """A one-axis mesh ("batch") over ``devices``."""
    return Mesh(np.asarray(devices), ("batch",))


def replicate(tree: Any, devices: Sequence[Any] | None) -> Any:
    """The arrays of ``tree`` placed whole on every one of ``devices`` (unchanged for
    ``None``), as the data-parallel training step returns them.

    A compiled function is specialized to the placement of its inputs: networks and optimizer
    state start on one device and come back from the first data-parallel epoch replicated over
    the mesh, so without this the second epoch compiled the whole training step again."""
    if not devices:
        return tree
    arrays, rest = eqx.partition(tree, eqx.is_array)
    sharding = NamedSharding(_mesh(devices), P())
    if sharding.is_fully_addressable:
        arrays = jax.device_put(arrays, sharding)
    else:
        # devices of other processes: each process gives its own copy of the same values
        arrays = jax.tree.map(lambda a: _from_processes(sharding, a), arrays)
    return eqx.combine(arrays, rest)


def _from_processes(sharding: NamedSharding, a: jax.Array) -> jax.Array:
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        data = jax.make_array_from_process_local_data(sharding, jax.random.key_data(a))
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(a))
    return jax.make_array_from_process_local_data(sharding, a)


def local(tree: Any) -> Any:
    """``tree`` with every array replicated over several processes' devices replaced by
    this process's copy (on its first device), so that what follows training (sampling,
    saving) runs in this process alone; unchanged in a single process."""
    if jax.process_count() == 1:
        return tree

    def one(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            return a.addressable_data(0)
        return a

    return jax.tree.map(one, tree)


def value_and_grad(
    objective: Callable[..., jax.Array],
    params: Any,
    batch: Any,
    key: jax.Array,
    devices: Sequence[Any] | None,
    *extra: Any,
) -> tuple[jax.Array, Any]:
    """``jax.value_and_grad`` of ``objective(params, batch, key, *extra)`` (a mean over the
    batch's rows) in ``params``; with ``devices``, each device takes an equal share of the
    rows (its own key: ``key`` folded with the device index; ``extra``, such as the training
    step, the same on every device) and the results are averaged."""
    if not devices:
        return jax.value_and_grad(objective)(params, batch, key, *extra)

    def shard(p, b, k, *e):
        k = jax.random.fold_in(k, jax.lax.axis_index("batch"))
        value, grads = jax.value_and_grad(objective)(p, b, k, *e)
        return jax.lax.pmean((value, grads), "batch")

    # (Letting XLA partition the whole step from a sharding constraint on the batch was
    # slower on a 2-core CPU than one device.)
    return jax.shard_map(
        shard,
        mesh=_mesh(devices),
        in_specs=(P(), P("batch"), P()) + (P(),) * len(extra),
        out_specs=(P(), P()),
        check_vma=False,
    )(params, batch, key, *extra)


def draws(
    draw: Callable[[Any, jax.Array, int], Any],
    inputs: Any,
    key: jax.Array,
    num_samples: int,
    devices: Sequence[Any] | None,
) -> Any:
    """``draw(inputs, key, num_samples)`` (arrays with the draws on axis 1, e.g.
    ``(num_datasets, num_samples, dim)``); with ``devices``, each device makes
    ``ceil(num_samples / D)`` draws with its own key (``key`` folded with the device index),
    joined on axis 1 and cut to ``num_samples``. ``inputs`` (networks, conditions) is passed
    to every device whole; passed as an argument, not closed over, because JAX's
    ``shard_map`` rejected operations on closed-over arrays (an ``argsort`` in a flow's
    inverse)."""
    if not devices:
        return draw(inputs, key, num_samples)
    per = -(-num_samples // len(devices))
    # only arrays cross the shard_map boundary: a network's Python leaves (a dropout
    # layer's `inference` flag) would be traced there and fail where they decide control flow
    arrays, rest = eqx.partition(inputs, eqx.is_array)

    def shard(arr, k):
        inp = eqx.combine(arr, rest)
        return draw(inp, jax.random.fold_in(k, jax.lax.axis_index("batch")), per)

    out = jax.shard_map(
        shard,
        mesh=_mesh(devices),
        in_specs=(P(), P()),
        out_specs=P(None, "batch"),
        check_vma=False,
    )(arrays, key)
    return jax.tree.map(lambda a: a[:, :num_samples], out)
