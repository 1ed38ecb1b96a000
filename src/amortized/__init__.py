"""amortized: amortized Bayesian inference with JAX.

The public API follows BayesFlow's user guide, so ``import amortized as bf`` runs its code.
"""

__version__ = "0.1.0"

from . import adapters, approximators, diagnostics, networks, simulators, training, workflow
from .adapters import Adapter
from .approximators import ContinuousApproximator
from .simulators import LikelihoodModel, NumPyroModel, make_simulator
from .training import set_cpu_devices
from .workflow import AmortizedBayesianWorkflow, BasicWorkflow, load

__all__ = [
    "Adapter",
    "AmortizedBayesianWorkflow",
    "BasicWorkflow",
    "ContinuousApproximator",
    "LikelihoodModel",
    "NumPyroModel",
    "__version__",
    "adapters",
    "approximators",
    "diagnostics",
    "load",
    "make_simulator",
    "networks",
    "set_cpu_devices",
    "simulators",
    "training",
    "workflow",
]
