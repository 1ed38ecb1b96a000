"""What a continuous approximator is made of, checked, and built into networks.

Pure functions: :func:`standardize_keys` checks the parts a user passes and resolves
``standardize``; :func:`build_networks` creates the networks' parameters and the
standardization statistics (and the regression adjustment) from a first batch of network
arrays and a PRNG key.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..adapters import NETWORK_KEYS, Adapter
from ..networks.base import InferenceNetwork
from ..networks.summary_base import SummaryNetwork
from . import chunked
from . import regression_adjustment as ra
from .core import IC, IV, SM, SV, Networks
from .standardization import Stats, compute_stats
from .standardization import standardize as standardize_array

STANDARDIZE_CHOICES = ("all", None) + NETWORK_KEYS


def standardize_keys(
    inference_network: Any,
    summary_network: Any,
    adapter: Any,
    standardize: str | Sequence[str] | None,
    where: str = "ContinuousApproximator",
) -> list[str]:
    """Raise for parts of the wrong kind; the network keys that ``standardize`` (``"all"``,
    None, a network key or a list of them) standardizes."""
    if not isinstance(inference_network, InferenceNetwork):
        raise TypeError(
            f"{where}: inference_network must be an amortized inference network (e.g. "
            f"bf.networks.CouplingFlow()), got {type(inference_network).__name__}"
        )
    if summary_network is not None and not isinstance(summary_network, SummaryNetwork):
        raise TypeError(
            f"{where}: summary_network must be a summary network (e.g. "
            f"bf.networks.SetTransformer()), got {type(summary_network).__name__}"
        )
    if adapter is not None and not isinstance(adapter, Adapter):
        raise TypeError(f"{where}: adapter must be an Adapter, got {type(adapter).__name__}")
    keys = (
        [standardize] if isinstance(standardize, str) or standardize is None else list(standardize)
    )
    for k in keys:
        if k not in STANDARDIZE_CHOICES:
            raise ValueError(
                f"{where}: standardize entries must be among {list(STANDARDIZE_CHOICES)}, got {k!r}"
            )
    if SM in keys:
        raise ValueError(f"{where}: 'summary_mask' is a mask, not standardized")
    if "all" in keys:
        return [k for k in NETWORK_KEYS if k != SM]
    return [k for k in keys if k is not None]


def build_networks(
    inference_network: InferenceNetwork,
    summary_network: SummaryNetwork | None,
    arrays: Mapping[str, jax.Array],
    standardize: Sequence[str],
    key: jax.Array,
    regression_adjustment: bool = False,
    warn_unused: bool = False,
) -> tuple[Networks, Stats]:
    """Parameters of both networks and the standardization statistics of the keys
    ``standardize``, from a first batch of network arrays (an image target ``(B, H, W,
    C)`` gives the inference network its layout, with the channels of a condition map);
    with ``regression_adjustment``, the linear fit of
    :mod:`~amortized.approximators.regression_adjustment` joins the statistics (vector
    targets, where :func:`adjustable` says it applies; where it does not, ``warn_unused``
    warns, saying why)."""
    k_inf, k_sum = jax.random.split(key)
    stats = compute_stats(arrays, list(standardize), row_masks={SV: SM})
    summary = None
    summary_dim = 0
    if summary_network is not None:
        sv = arrays[SV]
        shape = (
            {n: tuple(a.shape[1:]) for n, a in sv.items()}
            if isinstance(sv, Mapping)
            else sv.shape[1:]
        )
        summary = summary_network.build(shape, k_sum)
        summary_dim = summary.summary_dim
    x = arrays[IV]
    cond_dim = (int(np.prod(arrays[IC].shape[1:])) if IC in arrays else 0) + summary_dim
    layout = None
    if x.ndim == 4:  # an image target (H, W, C), with a condition map of D channels
        map_channels = arrays[IC].shape[-1] if IC in arrays and arrays[IC].ndim == 4 else 0
        layout = (*x.shape[1:], map_channels)
    dim = int(np.prod(x.shape[1:]))
    inference = inference_network.build(dim, cond_dim, k_inf, layout)
    if regression_adjustment:
        features = np.zeros((x.shape[0], 0))
        if x.ndim == 2:
            features = np.asarray(chunked.features(Networks(inference, summary), stats, arrays))
        if x.ndim == 2 and adjustable(*features.shape):
            z = np.asarray(standardize_array(stats, IV, arrays[IV]))
            (coef, scale), groups = ra.fit_groups(z, features)
            stats[ra.KEY] = (jnp.asarray(coef, jnp.float32), jnp.asarray(scale, jnp.float32))
            if groups is not None:
                stats[ra.GROUPS_KEY] = tuple(jnp.asarray(a, jnp.float32) for a in groups)
        elif warn_unused:
            warnings.warn(
                f"regression_adjustment=True does nothing here: it needs vector targets "
                f"(got per-dataset shape {tuple(x.shape[1:])}) and at least "
                f"{ra.ROWS_PER_COEFFICIENT} training rows per coefficient of features fixed "
                f"before training (direct conditions, a summary network's explicit "
                f"statistics): {features.shape[1]} feature(s), {x.shape[0]} rows",
                stacklevel=2,
            )
    return Networks(inference, summary), stats


def adjustable(rows: int, num_features: int) -> bool:
    """Whether the regression adjustment applies: some features, and at least
    :data:`~.regression_adjustment.ROWS_PER_COEFFICIENT` training rows per coefficient
    (with fewer, the fit would explain the training rows' noise)."""
    return num_features > 0 and rows >= ra.ROWS_PER_COEFFICIENT * (num_features + 1)


def adjustment_option(where: str, value: Any, default: bool) -> bool:
    """``regression_adjustment``: True, False, or None for ``default``; anything else
    raises (a string such as ``"no"`` is not read by its truthiness)."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise TypeError(
            f"{where}: regression_adjustment must be True, False or None (the default, "
            f"{default}), got {value!r}"
        )
    return value
