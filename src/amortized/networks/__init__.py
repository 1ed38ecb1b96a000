"""Networks: inference networks (normalizing flows, flow matching, diffusion, consistency
models), summary networks for sets, time series and images, and subnets."""

from .base import InferenceNetwork
from .consistency_model import ConsistencyModel
from .convolutional_network import ConvolutionalNetwork
from .coupling_flow import CouplingFlow
from .deep_set import DeepSet
from .diffusion_model import DiffusionModel
from .flow_matching import FlowMatching
from .fusion_network import FusionNetwork
from .mlp import MLP, TimeMLP
from .ratio_network import RatioNetwork
from .scoring_rule_network import PointNetwork, ScoringRuleNetwork
from .set_transformer import SetTransformer
from .stable_consistency_model import StableConsistencyModel
from .summary_base import SummaryNetwork
from .time_series_network import TimeSeriesNetwork
from .time_series_transformer import TimeSeriesTransformer
from .unet import UNet
from .uvit import UViT

INFERENCE_NETWORKS: dict[str, type[InferenceNetwork]] = {
    "ConsistencyModel": ConsistencyModel,
    "CouplingFlow": CouplingFlow,
    "DiffusionModel": DiffusionModel,
    "FlowMatching": FlowMatching,
    "RatioNetwork": RatioNetwork,
    "ScoringRuleNetwork": ScoringRuleNetwork,
    "StableConsistencyModel": StableConsistencyModel,
}
SUMMARY_NETWORKS: dict[str, type[SummaryNetwork]] = {
    "ConvolutionalNetwork": ConvolutionalNetwork,
    "DeepSet": DeepSet,
    "FusionNetwork": FusionNetwork,
    "SetTransformer": SetTransformer,
    "TimeSeriesNetwork": TimeSeriesNetwork,
    "TimeSeriesTransformer": TimeSeriesTransformer,
}

__all__ = [
    "INFERENCE_NETWORKS",
    "MLP",
    "SUMMARY_NETWORKS",
    "ConsistencyModel",
    "ConvolutionalNetwork",
    "CouplingFlow",
    "DeepSet",
    "DiffusionModel",
    "FlowMatching",
    "FusionNetwork",
    "InferenceNetwork",
    "PointNetwork",
    "RatioNetwork",
    "ScoringRuleNetwork",
    "SetTransformer",
    "StableConsistencyModel",
    "SummaryNetwork",
    "TimeMLP",
    "TimeSeriesNetwork",
    "TimeSeriesTransformer",
    "UNet",
    "UViT",
]
