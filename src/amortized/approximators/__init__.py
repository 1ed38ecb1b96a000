"""Approximators: networks + adapter + standardization = sample / log_prob."""

from .continuous import ContinuousApproximator
from .core import Networks
from .ensemble import EnsembleApproximator
from .protocol import DensityEstimator, density_estimator
from .scoring_rule import ScoringRuleApproximator

#: BayesFlow 2.1's name for the same estimator
BasicEstimator = ContinuousApproximator

__all__ = [
    "BasicEstimator",
    "ContinuousApproximator",
    "DensityEstimator",
    "EnsembleApproximator",
    "Networks",
    "ScoringRuleApproximator",
    "density_estimator",
]
