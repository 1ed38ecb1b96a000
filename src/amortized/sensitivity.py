"""Sensitivity and multiverse analysis in one training run (``bf.sensitivity``).

Power-scaling of the prior (Elsemüller et al. 2024) and of the likelihood (Kallioinen et
al. 2024): train one network on :func:`power_scaling`'s simulations, with the prior's power
``gamma`` as a condition, then ask it for the posterior under any power
(:func:`prior_power_draws`) and for each parameter's sensitivity and rating
(:func:`power_scaling_analysis`). Multiverse analysis: declare named analytic choices
(:class:`Multiverse`), train one network over every combination, and get every universe's
posterior and their agreement (:func:`multiverse_analysis`). The pieces live in their layers:
:mod:`amortized.simulators.power_scaled` (the model), :mod:`amortized.simulators.
prior_power` (powers of distributions), :mod:`amortized.diagnostics.power_sensitivity`
(the measures) and :mod:`amortized.workflow.sensitivity` (the analysis).
"""

from .simulators.multiverse import Multiverse
from .simulators.power_scaled import (
    ApproximatePowerWarning,
    PowerScaledModel,
    power_scaling,
)
from .simulators.prior_power import power_distribution
from .workflow.multiverse import MultiverseResult, multiverse_analysis, multiverse_draws
from .workflow.sensitivity import SensitivityResult, power_scaling_analysis, prior_power_draws

__all__ = [
    "ApproximatePowerWarning",
    "Multiverse",
    "MultiverseResult",
    "PowerScaledModel",
    "SensitivityResult",
    "multiverse_analysis",
    "multiverse_draws",
    "power_distribution",
    "power_scaling",
    "power_scaling_analysis",
    "prior_power_draws",
]
