"""Networks: inference networks (normalizing flows, flow matching), summary networks for
sets and time series, and subnets."""

from .base import InferenceNetwork
from .coupling_flow import CouplingFlow
from .deep_set import DeepSet
from .flow_matching import FlowMatching
from .mlp import MLP, TimeMLP
from .set_transformer import SetTransformer
from .summary_base import SummaryNetwork
from .time_series_transformer import TimeSeriesTransformer

INFERENCE_NETWORKS: dict[str, type[InferenceNetwork]] = {
    "CouplingFlow": CouplingFlow,
    "FlowMatching": FlowMatching,
}
SUMMARY_NETWORKS: dict[str, type[SummaryNetwork]] = {
    "DeepSet": DeepSet,
    "SetTransformer": SetTransformer,
    "TimeSeriesTransformer": TimeSeriesTransformer,
}

__all__ = [
    "INFERENCE_NETWORKS",
    "MLP",
    "SUMMARY_NETWORKS",
    "CouplingFlow",
    "DeepSet",
    "FlowMatching",
    "InferenceNetwork",
    "SetTransformer",
    "SummaryNetwork",
    "TimeMLP",
    "TimeSeriesTransformer",
]
