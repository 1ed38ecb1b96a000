"""Issue 19 (session 18): the AR(1) scenario's oracle: the default CouplingFlow
conditioned on the exact sufficient statistics (log syy / T, sxy / sxx, log sxx / syy,
log T) instead of a summary network, scored like the scenario (C2ST on 3 series at T = 20, 60, 200):

    python experiments/ar1_oracle.py [COUPLING_FLOW_KWARGS]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scenarios  # noqa: E402

import amortized as bf  # noqa: E402
from amortized.diagnostics import c2st  # noqa: E402

sim = scenarios.ar1_simulator()
data = sim.sample_ragged(20000, chunk_size=64, seed=1)


def stats(y, mask):
    y = y[..., 0] * mask
    prev = np.concatenate([np.zeros((len(y), 1)), y[:, :-1]], 1)
    T = mask.sum(1)
    syy, sxy, sxx = (y * y).sum(1), (y * prev).sum(1), (prev * prev).sum(1)
    return np.stack([np.log(syy / T), sxy / sxx, np.log(sxx / syy), np.log(T)], 1).astype(
        np.float32
    )


d = {"phi": data["phi"], "sigma": data["sigma"], "s": stats(data["y_series"], data["mask"])}
ad = (
    bf.Adapter()
    .convert_dtype()
    .constrain("phi", lower=-1.0, upper=1.0)
    .constrain("sigma", lower=0.0)
    .concatenate(["phi", "sigma"], into="inference_variables")
    .rename("s", "inference_conditions")
)
wf = bf.BasicWorkflow(
    adapter=ad,
    **(
        {"inference_network": bf.networks.CouplingFlow(**eval(sys.argv[1]))}
        if len(sys.argv) > 1
        else {}
    ),
)
t = time.perf_counter()
h = wf.fit_offline(d, seed=1, progress=False)
print(
    "trained",
    len(h["loss"]),
    "epochs",
    round(time.perf_counter() - t),
    "s best",
    h["best_epoch"],
    min(h["val_loss"]),
)
rng = np.random.default_rng(1)
for s, T in enumerate([20, 60, 200]):
    test = sim.sample(3, seed=10_000 + s, T=T)
    st = stats(test["y_series"], np.ones(test["y_series"].shape[:2]))
    dr = wf.sample(conditions={"s": st}, num_samples=10000, seed=s, progress=False)
    ap = np.concatenate([dr["phi"], dr["sigma"]], -1)
    print(
        T,
        [round(c2st(scenarios.ar1_exact(test, j, 10000, rng), ap[j]), 3) for j in range(3)],
        flush=True,
    )
