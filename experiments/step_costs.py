"""Issue 19: seconds per training step of summary / inference network settings on the
regression scenario (sets of 100 (x, y) rows), measured from the second epoch of a short
fit_offline. Run once without and once with a split CPU:

    python experiments/step_costs.py
    XLA_FLAGS="--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false" \
        python experiments/step_costs.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scenarios  # noqa: E402

import amortized as bf  # noqa: E402

CONFIGS = {
    "flow only (no summary)": None,
    "ST default": {},
    "ST (32,32) h2 mlp64": dict(embed_dims=(32, 32), num_heads=(2, 2), mlp_widths=(64,)),
    "ST (32,32) h2 mlp64 ind16": dict(
        embed_dims=(32, 32), num_heads=(2, 2), mlp_widths=(64,), num_inducing_points=16
    ),
    "ST (32,) h2 mlp64": dict(embed_dims=(32,), num_heads=(2,), mlp_widths=(64,)),
    "ST (64,64) ind16": dict(num_inducing_points=16),
    "DeepSet default": "deepset",
    # session 15: what the per-row cost is made of
    "ST (32,) h2 mlp64 dropout 0": dict(
        embed_dims=(32,), num_heads=(2,), mlp_widths=(64,), dropout=0.0
    ),
    "ST (16,) h2 mlp32": dict(embed_dims=(16,), num_heads=(2,), mlp_widths=(32,)),
    "DeepSet dropout 0": "deepset0",
    # session 17: rows one by one, then pooling (no attention between rows)
    "ST rff": dict(self_attention=False),
    "ST ind8": dict(num_inducing_points=8),
}


def main(batch_sizes=(32, 128), only=()):
    sim = scenarios.regression_simulator()
    data = sim.sample(2048, seed=0, N=100)
    data["mask"] = np.ones(data["xy"].shape[:2])
    for label, cfg in CONFIGS.items():
        if only and not any(o in label for o in only):
            continue
        for bs in batch_sizes:
            if cfg is None:
                adapter = (
                    bf.Adapter()
                    .convert_dtype()
                    .constrain("sigma", lower=0.0)
                    .concatenate(["beta", "sigma"], into="inference_variables")
                    .rename("xy", "inference_conditions")
                    .drop("N")
                )
                summary = None
                d = {k: v for k, v in data.items()}
                d["xy"] = d["xy"].reshape(len(d["xy"]), -1)
                del d["mask"]
            else:
                adapter = scenarios.set_adapter(["beta", "sigma"], {"sigma": 0.0}, {}, data="xy")
                summary = (
                    bf.networks.DeepSet(dropout=0.0 if cfg == "deepset0" else 0.05)
                    if isinstance(cfg, str)
                    else bf.networks.SetTransformer(**cfg)
                )
                d = data
            wf = bf.BasicWorkflow(simulator=sim, adapter=adapter, summary_network=summary)
            t = time.perf_counter()
            h = wf.fit_offline(d, epochs=3, batch_size=bs, seed=0, progress=False)
            total = time.perf_counter() - t
            steps = len(d["beta"]) // bs
            per = np.median(h["epoch_seconds"][1:]) / steps
            print(
                f"{label:28s} batch {bs:4d}: {1000 * per:7.2f} ms/step, "
                f"{1e6 * per / bs:6.1f} us/row, first epoch {h['epoch_seconds'][0]:.1f} s "
                f"(total {total:.0f} s, devices {h['devices'][-1]})",
                flush=True,
            )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=(), help="labels containing these")
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=(32, 128))
    args = parser.parse_args()
    main(tuple(args.batch_sizes), tuple(args.only))
