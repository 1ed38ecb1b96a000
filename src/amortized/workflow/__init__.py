"""Workflows: BasicWorkflow (simulate, train, sample, save/load) and the amortized Bayesian
workflow (amortized draws -> PSIS -> ChEES-HMC -> NUTS)."""

from .amortized_bayesian import AmortizedBayesianWorkflow, WorkflowResult
from .basic import BasicWorkflow, load

__all__ = ["AmortizedBayesianWorkflow", "BasicWorkflow", "WorkflowResult", "load"]
