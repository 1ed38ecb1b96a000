"""Training: optimizers, the compiled epoch, the fit loop and data-parallel steps."""

from .fit import OverfittingWarning, TrainingDiverged, fit, overfitting_message
from .optimizer import default_optimizer
from .parallel import set_cpu_devices

__all__ = [
    "OverfittingWarning",
    "TrainingDiverged",
    "default_optimizer",
    "fit",
    "overfitting_message",
    "set_cpu_devices",
]
