"""Workflows: BasicWorkflow (simulate, train, sample, save/load) and the amortized Bayesian
workflow (amortized draws -> PSIS -> ChEES-HMC -> NUTS); ModelComparisonWorkflow;
EnsembleWorkflow (several networks on the same simulations: mixture and disagreement)."""

from .amortized_bayesian import AmortizedBayesianWorkflow, WorkflowResult
from .basic import BasicWorkflow, load
from .ensemble import EnsembleWorkflow
from .mcmc_posterior import McmcPosterior, mcmc_posterior
from .model_comparison import ModelComparisonWorkflow

__all__ = [
    "AmortizedBayesianWorkflow",
    "BasicWorkflow",
    "EnsembleWorkflow",
    "McmcPosterior",
    "ModelComparisonWorkflow",
    "WorkflowResult",
    "load",
    "mcmc_posterior",
]
