"""FusionNetwork: one summary network (backbone) per data source, summaries concatenated.

``summary_variables`` is then a dict ``{source: (batch, ...)}`` (``Adapter.group``); each
backbone sees its own source (and its own mask when ``summary_mask`` is a dict with the same
keys). summary = concat_s backbone_s(x_s), optionally mapped by an MLP head to
``summary_dim`` numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import strict
from .mlp import MLP, split_dropout_key
from .summary_base import SummaryNetwork


def _registry():
    from . import SUMMARY_NETWORKS

    return SUMMARY_NETWORKS


def _as_backbone(name: str, net) -> SummaryNetwork:
    if isinstance(net, SummaryNetwork):
        return net
    if isinstance(net, Mapping) and set(net) == {"class", "config"}:
        reg = _registry()
        if net["class"] not in reg:
            raise ValueError(f"FusionNetwork: unknown backbone class {net['class']!r}")
        return reg[net["class"]](**net["config"])
    raise TypeError(
        f"FusionNetwork: backbone {name!r} must be a summary network (e.g. "
        f"bf.networks.SetTransformer()), got {type(net).__name__}"
    )


def _shapes(input_shape) -> dict[str, tuple[int, ...]]:
    items = input_shape.items() if isinstance(input_shape, Mapping) else input_shape
    return {str(k): tuple(int(s) for s in v) for k, v in items}


class FusionNetwork(SummaryNetwork):
    """Summaries of several sources, concatenated.

    Parameters
    ----------
    backbones : dict of str to SummaryNetwork
        One network per source key of ``summary_variables``.
    summary_dim : int, optional
        With it an MLP head (``head_widths``, default (64,)) maps the concatenation to
        ``summary_dim`` numbers; without it the concatenation is the summary.
    head_widths : sequence of int, default (64,)
    dropout : float, default 0.05
        In the head.

    >>> from amortized.networks import SetTransformer, TimeSeriesNetwork
    >>> net = FusionNetwork({"series": TimeSeriesNetwork(), "set": SetTransformer()})
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nets: tuple[SummaryNetwork, ...]
    head: MLP | None

    @strict
    def __init__(
        self,
        backbones: Mapping[str, SummaryNetwork],
        summary_dim: int | None = None,
        head_widths: Sequence[int] = (64,),
        dropout: float = 0.05,
        input_shape: tuple = (),
        key: jax.Array | None = None,
    ):
        if not isinstance(backbones, Mapping) or not backbones:
            raise ValueError("FusionNetwork: backbones must be a non-empty dict {source: net}")
        self.names = tuple(sorted(str(k) for k in backbones))
        nets = [_as_backbone(k, backbones[k]) for k in self.names]
        self.config_json = json.dumps(
            {
                "backbones": {
                    k: {"class": type(n).__name__, "config": n.config}
                    for k, n in zip(self.names, nets, strict=True)
                },
                "summary_dim": None if summary_dim is None else int(summary_dim),
                "head_widths": [int(w) for w in head_widths],
                "dropout": float(dropout),
            },
            sort_keys=True,
        )
        self.input_shape = tuple(sorted(_shapes(input_shape).items())) if input_shape else ()
        self.head = None
        if not self.input_shape:
            self.nets = tuple(nets)
            return
        shapes = dict(self.input_shape)
        if set(shapes) != set(self.names):
            raise ValueError(
                f"FusionNetwork: summary_variables has sources {sorted(shapes)}, but backbones "
                f"are given for {list(self.names)}"
            )
        keys = jax.random.split(key, len(nets) + 1)
        self.nets = tuple(
            n.build(shapes[k], kk) for k, n, kk in zip(self.names, nets, keys, strict=False)
        )
        if summary_dim is not None:
            total = sum(n.summary_dim for n in self.nets)
            self.head = MLP(
                total, int(summary_dim), widths=head_widths, dropout=dropout, key=keys[-1]
            )

    @property
    def summary_dim(self) -> int:
        cfg = self.config
        if cfg["summary_dim"] is not None:
            return int(cfg["summary_dim"])
        return sum(_as_backbone(k, b).summary_dim for k, b in cfg["backbones"].items())

    def build(self, input_shape, key: jax.Array) -> FusionNetwork:
        if not isinstance(input_shape, Mapping) and not (
            input_shape
            and all(
                isinstance(p, Sequence) and len(p) == 2 and isinstance(p[0], str)
                for p in input_shape
            )
        ):
            raise ValueError(
                "FusionNetwork: summary_variables must be a dict of sources (use "
                f"Adapter.group([...], into='summary_variables')); got shape {input_shape}"
            )
        cfg = self.config
        return FusionNetwork(
            backbones=cfg["backbones"],
            summary_dim=cfg["summary_dim"],
            head_widths=cfg["head_widths"],
            dropout=cfg["dropout"],
            input_shape=_shapes(input_shape),
            key=key,
        )

    def __call__(self, x, key=None, mask=None):
        keys = (
            [None] * (len(self.nets) + 1)
            if key is None
            else list(split_dropout_key(key, len(self.nets) + 1))
        )
        parts = []
        for name, net, k in zip(self.names, self.nets, keys, strict=False):
            m = mask.get(name) if isinstance(mask, Mapping) else None
            parts.append(net(x[name], key=k, mask=m))
        z = jnp.concatenate(parts)
        return z if self.head is None else self.head(z, keys[-1])
