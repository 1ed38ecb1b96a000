"""Simulators: compose prior and observation functions by argument name; built-in tasks;
padding of datasets of different sizes."""

from . import benchmarks
from ._density_model import DensityModel
from .likelihood_model import LikelihoodModel
from .model_comparison import ModelComparisonSimulator
from .numpyro_model import NumPyroModel
from .ragged import bucket_length, pad_ragged
from .simulator import SharedMetaWarning, SimulationError, Simulator, make_simulator

__all__ = [
    "DensityModel",
    "LikelihoodModel",
    "ModelComparisonSimulator",
    "NumPyroModel",
    "SharedMetaWarning",
    "SimulationError",
    "Simulator",
    "benchmarks",
    "bucket_length",
    "make_simulator",
    "pad_ragged",
]
