"""Approximators: networks + adapter + standardization = sample / log_prob."""

from .continuous import ContinuousApproximator
from .core import Networks
from .ensemble import EnsembleApproximator
from .likelihood import NeuralLikelihood
from .model_comparison import ModelComparisonApproximator
from .protocol import DensityEstimator, density_estimator
from .ratio import RatioApproximator
from .scoring_rule import ScoringRuleApproximator
from .self_consistency import SelfConsistency

#: BayesFlow 2.1's name for the same estimator
BasicEstimator = ContinuousApproximator

__all__ = [
    "BasicEstimator",
    "ContinuousApproximator",
    "DensityEstimator",
    "EnsembleApproximator",
    "ModelComparisonApproximator",
    "NeuralLikelihood",
    "Networks",
    "RatioApproximator",
    "ScoringRuleApproximator",
    "SelfConsistency",
    "density_estimator",
]
