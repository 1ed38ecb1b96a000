"""Simulators: compose prior and observation functions by argument name; built-in tasks."""

from . import benchmarks
from .simulator import SimulationError, Simulator, make_simulator

__all__ = ["SimulationError", "Simulator", "benchmarks", "make_simulator"]
