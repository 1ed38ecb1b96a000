"""How a context model's benchmark routes its observations (``--observed-as``): flat into
the inference conditions (the default adapter), or as a set through a default
``SetTransformer``. Shared by ``multiverse.py`` and ``sensitivity.py``."""

from __future__ import annotations

import argparse

CHOICES = ("flat", "set")


def add_argument(parser: argparse.ArgumentParser, results_name: str) -> None:
    """``--observed-as flat|set``; the set run writes ``results/<results_name>_set.json``."""
    parser.add_argument(
        "--observed-as",
        choices=CHOICES,
        default="flat",
        help="set: the observations as a set through a default SetTransformer; results go "
        f"to results/{results_name}_set.json",
    )


def adapter_and_summary(bf, model, observed_as: str):
    """``(adapter, summary_network)`` for a multiverse or power-scaled ``model``: its
    default adapter and no summary network, or (``"set"``) the observations routed as a
    set (``model.default_adapter("summary_variables")``) and a default SetTransformer."""
    if observed_as == "set":
        return model.default_adapter("summary_variables"), bf.networks.SetTransformer()
    return model.default_adapter(), None
