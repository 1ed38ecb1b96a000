"""Diagnostic plots; each returns a matplotlib Figure (no pyplot state is touched)."""

from .calibration_ecdf import calibration_ecdf
from .calibration_histogram import calibration_histogram
from .coverage import coverage
from .ensemble import disagreement_plot, member_losses
from .loss import loss
from .mmd_hypothesis_test import mmd_hypothesis_test
from .model_comparison import mc_calibration, mc_confusion_matrix
from .pairs import pairs_posterior, pairs_samples
from .predictive import predictive_check
from .recovery import recovery
from .z_score_contraction import z_score_contraction

__all__ = [
    "calibration_ecdf",
    "calibration_histogram",
    "coverage",
    "disagreement_plot",
    "loss",
    "mc_calibration",
    "mc_confusion_matrix",
    "member_losses",
    "mmd_hypothesis_test",
    "pairs_posterior",
    "pairs_samples",
    "predictive_check",
    "recovery",
    "z_score_contraction",
]
