"""Networks: inference networks (normalizing flows, flow matching) and subnets."""

from .base import InferenceNetwork
from .coupling_flow import CouplingFlow
from .flow_matching import FlowMatching
from .mlp import MLP, TimeMLP

INFERENCE_NETWORKS: dict[str, type[InferenceNetwork]] = {
    "CouplingFlow": CouplingFlow,
    "FlowMatching": FlowMatching,
}

__all__ = [
    "INFERENCE_NETWORKS",
    "MLP",
    "CouplingFlow",
    "FlowMatching",
    "InferenceNetwork",
    "TimeMLP",
]
