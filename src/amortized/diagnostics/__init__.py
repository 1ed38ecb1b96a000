"""Diagnostics: metrics as pure functions over arrays, ratings, plots and the report.

Arrays: ``estimates (num_datasets, num_samples, dim)`` or ``{name: (num_datasets,
num_samples, *shape)}``; ``targets (num_datasets, dim)`` or ``{name: (num_datasets, *shape)}``.
"""

from . import metrics, plots
from ._arrays import Metric
from .c2st import c2st, c2st_many
from .contraction import posterior_contraction, posterior_z_scores
from .coverage import calibration_error, expected_coverage
from .default import DEFAULT_METRICS, default_diagnostics
from .diagnose import Diagnosis, default_figures, diagnose
from .ecdf import EcdfBands, ecdf_bands, gamma_statistic, log_gamma
from .ensemble_disagreement import Disagreement, ensemble_disagreement
from .misspecification import MisspecificationTest, misspecification_test
from .mmd import mmd
from .model_comparison import (
    MC_METRICS,
    confusion_matrix,
    expected_calibration_error,
    model_comparison_diagnostics,
)
from .model_comparison_report import model_comparison_report
from .multimodality import multimodal_fraction
from .nested_rhat import nested_rhat
from .ood import SummaryReference, mmd_check, summary_reference
from .point_estimates import point_diagnostics, point_recovery, quantile_calibration
from .predictive import (
    PredictiveCheck,
    default_statistics,
    posterior_predictive_check,
    prior_predictive_check,
)
from .psis import MomentMatchResult, PsisResult, moment_match, pareto_k_threshold, psis, resample
from .ratings import THRESHOLDS, Thresholds, inspect_history, next_steps, rate_diagnostics
from .recovery import nrmse, recovery_correlation
from .report import build_report, write_report
from .sbc import fractional_ranks, sbc_ranks
from .tarp import tarp

__all__ = [
    "Disagreement",
    "MisspecificationTest",
    "PredictiveCheck",
    "default_statistics",
    "misspecification_test",
    "posterior_predictive_check",
    "prior_predictive_check",
    "ensemble_disagreement",
    "DEFAULT_METRICS",
    "MC_METRICS",
    "THRESHOLDS",
    "Diagnosis",
    "EcdfBands",
    "Metric",
    "MomentMatchResult",
    "PsisResult",
    "SummaryReference",
    "Thresholds",
    "build_report",
    "c2st",
    "c2st_many",
    "calibration_error",
    "confusion_matrix",
    "default_diagnostics",
    "default_figures",
    "diagnose",
    "ecdf_bands",
    "expected_calibration_error",
    "expected_coverage",
    "fractional_ranks",
    "gamma_statistic",
    "inspect_history",
    "log_gamma",
    "mmd",
    "metrics",
    "mmd_check",
    "model_comparison_diagnostics",
    "model_comparison_report",
    "multimodal_fraction",
    "moment_match",
    "nested_rhat",
    "next_steps",
    "nrmse",
    "pareto_k_threshold",
    "plots",
    "point_diagnostics",
    "point_recovery",
    "posterior_contraction",
    "posterior_z_scores",
    "psis",
    "quantile_calibration",
    "rate_diagnostics",
    "recovery_correlation",
    "resample",
    "sbc_ranks",
    "summary_reference",
    "tarp",
    "write_report",
]
