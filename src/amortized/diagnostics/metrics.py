"""BayesFlow's names for the diagnostic metrics: ``bf.diagnostics.metrics``.

Code written for BayesFlow runs unchanged: the functions take BayesFlow's arguments
(``estimates``, ``targets``, ``variable_keys``, ``variable_names``, ``test_quantities``,
``aggregation`` ...) and return BayesFlow's dict ``{"values", "metric_name",
"variable_names"}``. Each one is a thin layer over the library's own metric (one
implementation behind both names), so the numbers agree with ``bf.diagnostics.nrmse``,
``calibration_error``, ``log_gamma``, ``posterior_contraction``, ``posterior_z_scores``,
``c2st`` and ``mmd``.

``estimates``: ``(num_datasets, num_samples, dim)`` or ``{name: (num_datasets, num_samples,
*shape)}``; ``targets``: ``(num_datasets, dim)`` or ``{name: (num_datasets, *shape)}``;
``variable_keys`` picks names from dict inputs.

>>> rng = np.random.default_rng(0)
>>> theta = rng.normal(size=(200, 2))
>>> out = posterior_contraction(theta[:, None] + 0.5 * rng.normal(size=(200, 100, 2)), theta)
>>> sorted(out), out["metric_name"], out["variable_names"]
(['metric_name', 'values', 'variable_names'], 'Posterior Contraction', ['v0', 'v1'])
>>> bool(np.all(np.abs(out["values"] - 0.75) < 0.1))  # 1 - 0.5^2, up to the prior's estimate
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._arrays import bayesflow_draws as _draws
from .c2st import c2st
from .contraction import posterior_contraction as _contraction
from .contraction import posterior_z_scores as _z_scores
from .coverage import calibration_error as _calibration_error
from .ecdf import log_gamma as _log_gamma
from .mmd import mmd
from .model_comparison import (  # noqa: F401 (BayesFlow's names, re-exported)
    accuracy,
    brier_score,
    expected_calibration_error,
)

Array = Mapping[str, Any] | np.ndarray


def _result(values, name: str, names) -> dict[str, Any]:
    return {"values": np.asarray(values), "metric_name": name, "variable_names": list(names)}


def _aggregated(where, name, metric, detail, estimates, targets, variable_keys,
                variable_names, test_quantities, aggregation) -> dict[str, Any]:  # fmt: skip
    """``aggregation`` over datasets of the per-dataset values ``details[detail]`` of the
    library's ``metric``, as BayesFlow's dict."""
    d = _draws(where, estimates, targets, variable_keys, variable_names, test_quantities)
    values = metric(d.estimates, d.targets, list(d.names)).details[detail]
    return _result(aggregation(values, axis=0), name, d.names)


def root_mean_squared_error(
    estimates: Array,
    targets: Array,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Callable] | None = None,
    normalize: bool | str | None = True,
    aggregation: Callable = np.median,
) -> dict[str, Any]:
    """(Normalized) RMSE: for each draw index, the RMSE over datasets against the truth;
    ``normalize`` (True or ``"range"``) divides by the range of the true values;
    ``aggregation`` over draw indices (the median, as :func:`~amortized.diagnostics.nrmse`).
    """
    d = _draws(
        "root_mean_squared_error", estimates, targets, variable_keys, variable_names,
        test_quantities,
    )  # fmt: skip
    if normalize not in (True, False, None, "range"):
        raise ValueError(
            f"root_mean_squared_error: normalize must be True, False, None or 'range', "
            f"got {normalize!r}"
        )
    rmse = np.sqrt(np.mean((d.estimates - d.targets[:, None, :]) ** 2, axis=0))
    name = "RMSE"
    if normalize in (True, "range"):
        span = d.targets.max(axis=0) - d.targets.min(axis=0)
        rmse, name = rmse / np.where(span > 0, span, 1.0), "NRMSE"
    return _result(aggregation(rmse, axis=0), name, d.names)


def calibration_error(
    estimates: Array,
    targets: Array,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Callable] | None = None,
    resolution: int = 20,
    aggregation: Callable = np.median,
    min_quantile: float = 0.005,
    max_quantile: float = 0.995,
) -> dict[str, Any]:
    """``aggregation`` over ``resolution`` credibility levels of |coverage - level| of the
    central intervals (see :func:`~amortized.diagnostics.calibration_error`)."""
    d = _draws(
        "calibration_error", estimates, targets, variable_keys, variable_names, test_quantities
    )
    m = _calibration_error(d.estimates, d.targets, list(d.names), resolution, min_quantile,
                           max_quantile)  # fmt: skip
    err = np.abs(m.details["coverage"] - m.details["levels"][:, None])
    return _result(aggregation(err, axis=0), "Calibration Error", d.names)


def calibration_log_gamma(
    estimates: Array,
    targets: Array,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Callable] | None = None,
    num_null_draws: int = 1000,
    quantile: float = 0.05,
) -> dict[str, Any]:
    """``log(gamma / gamma_quantile)`` of the SBC rank ECDF: ``>= 0`` when calibration is
    not rejected at level ``quantile``. The critical value is computed exactly (see
    :mod:`amortized.diagnostics.ecdf`), so ``num_null_draws``, BayesFlow's simulation size
    for it, is accepted and has nothing to do."""
    del num_null_draws  # the null quantile is exact here
    d = _draws(
        "calibration_log_gamma", estimates, targets, variable_keys, variable_names,
        test_quantities,
    )  # fmt: skip
    m = _log_gamma(d.estimates, d.targets, list(d.names), alpha=quantile)
    return _result(m.values, "Log Gamma", d.names)


def posterior_contraction(
    estimates: Array,
    targets: Array,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Callable] | None = None,
    aggregation: Callable = np.median,
) -> dict[str, Any]:
    """``aggregation`` over datasets of ``1 - Var_post / Var_prior``."""
    return _aggregated(
        "posterior_contraction", "Posterior Contraction", _contraction, "contraction",
        estimates, targets, variable_keys, variable_names, test_quantities, aggregation,
    )  # fmt: skip


def posterior_z_score(
    estimates: Array,
    targets: Array,
    variable_keys: Sequence[str] | None = None,
    variable_names: Sequence[str] | None = None,
    test_quantities: Mapping[str, Callable] | None = None,
    aggregation: Callable = np.median,
) -> dict[str, Any]:
    """``aggregation`` over datasets of ``(E_post - truth) / SD_post``."""
    return _aggregated(
        "posterior_z_score", "Posterior z-score", _z_scores, "z_scores",
        estimates, targets, variable_keys, variable_names, test_quantities, aggregation,
    )  # fmt: skip


def classifier_two_sample_test(
    estimates: np.ndarray,
    targets: np.ndarray,
    metric: str = "accuracy",
    patience: int = 5,
    max_epochs: int = 1000,
    batch_size: int = 128,
    return_metric_only: bool = True,
    validation_split: float = 0.5,
    standardize: bool = True,
    random_seed: int = 123,
    mlp_widths: Sequence[int] = (64, 64),
    **kwargs: Any,
) -> float | dict[str, Any]:
    """C2ST accuracy between two samples ``estimates (n, dim)`` and ``targets (m, dim)``:
    0.5 when a classifier cannot tell them apart, 1.0 when it always can.

    The classifier and its protocol are sbibm's (the library's :func:`~amortized.diagnostics
    .c2st`: an MLP with 10 x dim hidden units, 5-fold cross-validation, standardized by the
    reference). BayesFlow's training settings (``patience``, ``max_epochs``,
    ``batch_size``, ``validation_split``, ``mlp_widths``) belong to its own Keras
    classifier and are refused when changed, rather than silently ignored."""
    from .._validation import check_keywords

    check_keywords("classifier_two_sample_test", kwargs, ["n_folds", "classifier"])
    if metric != "accuracy":
        raise ValueError(f"classifier_two_sample_test: metric must be 'accuracy', got {metric!r}")
    if not standardize:
        raise ValueError(
            "classifier_two_sample_test: the sbibm protocol always standardizes by the "
            "reference; standardize=False is not offered"
        )
    defaults = {
        "patience": (patience, 5),
        "max_epochs": (max_epochs, 1000),
        "batch_size": (batch_size, 128),
        "validation_split": (validation_split, 0.5),
        "mlp_widths": (tuple(mlp_widths), (64, 64)),
    }
    changed = [k for k, (v, default) in defaults.items() if v != default]
    if changed:
        raise ValueError(
            f"classifier_two_sample_test: {changed} set BayesFlow's Keras classifier, which "
            f"this library does not use (it runs the sbibm C2ST protocol); leave them at "
            f"their defaults or call bf.diagnostics.c2st"
        )
    acc = c2st(np.asarray(targets), np.asarray(estimates), seed=random_seed, **kwargs)
    if return_metric_only:
        return acc
    return {"metric": acc, "metric_name": "Classifier Two-Sample Test Accuracy"}


def bootstrap_comparison(
    observed_samples: np.ndarray,
    reference_samples: np.ndarray,
    comparison_fn: Callable[[np.ndarray, np.ndarray], float] = mmd,
    num_null_samples: int = 100,
    seed: int | None = None,
) -> tuple[float, np.ndarray]:
    """Distance between ``observed_samples (n, d)`` and ``reference_samples (m, d)``, and
    its null distribution: ``comparison_fn`` between ``n`` rows drawn (with replacement)
    from the reference and the reference, ``num_null_samples`` times. An observed distance
    far in the null's upper tail says the observations do not look like the reference."""
    obs, ref = np.asarray(observed_samples), np.asarray(reference_samples)
    if obs.ndim != 2 or ref.ndim != 2 or obs.shape[1] != ref.shape[1]:
        raise ValueError(
            f"bootstrap_comparison: expected two (n, dim) arrays with the same dim, got "
            f"{obs.shape} and {ref.shape}"
        )
    if len(obs) > len(ref):
        raise ValueError(
            f"bootstrap_comparison: {len(obs)} observed rows exceed the {len(ref)} reference "
            f"rows that the null distribution resamples"
        )
    rng = np.random.default_rng(seed)
    observed = float(comparison_fn(obs, ref))
    null = np.array(
        [
            float(comparison_fn(ref[rng.integers(0, len(ref), len(obs))], ref))
            for _ in range(int(num_null_samples))
        ]
    )
    return observed, null


def summary_space_comparison(
    observed_data: Mapping[str, Any],
    reference_data: Mapping[str, Any],
    approximator: Any,
    num_null_samples: int = 100,
    comparison_fn: Callable[[np.ndarray, np.ndarray], float] = mmd,
    seed: int | None = None,
) -> tuple[float, np.ndarray]:
    """:func:`bootstrap_comparison` of the learned summaries of ``observed_data`` and of
    ``reference_data`` (simulations), ``approximator.summarize`` (an approximator or a
    workflow) computing both: a misspecification check in summary space."""
    if not hasattr(approximator, "summarize"):
        raise TypeError(
            f"summary_space_comparison: approximator must have summarize (a trained "
            f"approximator or workflow with a summary network), got {type(approximator).__name__}"
        )
    obs = np.asarray(approximator.summarize(observed_data))
    ref = np.asarray(approximator.summarize(reference_data))
    return bootstrap_comparison(obs, ref, comparison_fn, num_null_samples, seed)
