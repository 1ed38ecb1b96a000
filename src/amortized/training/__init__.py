"""Training: optimizers, the compiled epoch, the fit loop and data-parallel steps."""

from .fit import TrainingDiverged, fit
from .optimizer import default_optimizer
from .parallel import set_cpu_devices

__all__ = ["TrainingDiverged", "default_optimizer", "fit", "set_cpu_devices"]
