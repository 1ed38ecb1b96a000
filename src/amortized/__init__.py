"""amortized: amortized Bayesian inference with JAX.

The public API follows BayesFlow's user guide, so ``import amortized as bf`` runs its code.
"""

__version__ = "0.1.0"

# Before anything can run on JAX: one CPU device per core (AMORTIZED_CPU_DEVICES=1 opts out).
from .training.parallel import split_cpu_by_default as _split_cpu_by_default

_split_cpu_by_default()

from . import (  # noqa: E402
    adapters,
    approximators,
    diagnostics,
    elicitation,
    networks,
    scoring_rules,
    sensitivity,
    simulators,
    training,
    workflow,
)
from .adapters import Adapter  # noqa: E402
from .approximators import (  # noqa: E402
    BasicEstimator,
    ContinuousApproximator,
    ModelComparisonApproximator,
    ScoringRuleApproximator,
    SelfConsistency,
)
from .simulators import LikelihoodModel, NumPyroModel, make_simulator  # noqa: E402
from .training import set_cpu_devices  # noqa: E402
from .workflow import (  # noqa: E402
    AmortizedBayesianWorkflow,
    BasicWorkflow,
    EnsembleWorkflow,
    ModelComparisonWorkflow,
    load,
)

__all__ = [
    "Adapter",
    "AmortizedBayesianWorkflow",
    "BasicWorkflow",
    "BasicEstimator",
    "ContinuousApproximator",
    "EnsembleWorkflow",
    "LikelihoodModel",
    "ModelComparisonApproximator",
    "ModelComparisonWorkflow",
    "NumPyroModel",
    "ScoringRuleApproximator",
    "SelfConsistency",
    "__version__",
    "adapters",
    "approximators",
    "diagnostics",
    "elicitation",
    "load",
    "make_simulator",
    "networks",
    "scoring_rules",
    "sensitivity",
    "set_cpu_devices",
    "simulators",
    "training",
    "workflow",
]
