"""Training: optimizers, the compiled epoch and the fit loop."""

from .fit import TrainingDiverged, fit
from .optimizer import default_optimizer

__all__ = ["TrainingDiverged", "default_optimizer", "fit"]
