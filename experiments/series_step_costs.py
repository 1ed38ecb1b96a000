"""Issue 19 (session 18): milliseconds per training step of TimeSeriesNetwork settings on
AR(1) series (20-200 steps, padded to 224), batch 32, from the second of three epochs:

    python experiments/series_step_costs.py [LABEL ...] [--by-step]

``--by-step`` forces one compiled call per step (as for a loss with a loop).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scenarios  # noqa: E402

import amortized as bf  # noqa: E402

sim = scenarios.ar1_simulator()
data = sim.sample_ragged(2048, chunk_size=64, seed=0)
CFGS = {
    "default": {},
    "f32x2 r32 w8": dict(filters=(32, 32), recurrent_dim=32, recurrent_window=8),
    "f32x2 r32 w8 uni": dict(
        filters=(32, 32), recurrent_dim=32, recurrent_window=8, bidirectional=False
    ),
    "f32x2 r32 w16 uni": dict(
        filters=(32, 32), recurrent_dim=32, recurrent_window=16, bidirectional=False
    ),
    "f32x2 no gru": dict(filters=(32, 32), recurrent_dim=0),
    "f64x2 no gru": dict(filters=(64, 64), recurrent_dim=0),
    "f32 no gru": dict(filters=(32,), recurrent_dim=0),
    "f32x2 k1 no gru": dict(filters=(32, 32), recurrent_dim=0, kernel_size=1),
    "f32x2 no gru nodrop": dict(filters=(32, 32), recurrent_dim=0, dropout=0.0),
}
only = [a for a in sys.argv[1:] if not a.startswith("--")]
if "--by-step" in sys.argv:
    import amortized.training.fit as F

    F.step_has_loop = lambda *a, **k: True
for label, cfg in CFGS.items():
    if only and label not in only:
        continue
    ad = scenarios.set_adapter(
        ["phi", "sigma"], {"phi": -1.0, "sigma": 0.0}, {"phi": 1.0}, data="y_series"
    )
    wf = bf.BasicWorkflow(
        simulator=sim, adapter=ad, summary_network=bf.networks.TimeSeriesNetwork(**cfg)
    )
    t = time.perf_counter()
    h = wf.fit_offline(data, epochs=3, batch_size=32, seed=0, progress=False)
    per = np.median(h["epoch_seconds"][1:]) / (len(data["phi"]) * 0.95 // 32)
    print(
        f"{label:25s} {1000 * per:7.2f} ms/step first {h['epoch_seconds'][0]:.1f}s "
        f"total {time.perf_counter() - t:.0f}s",
        flush=True,
    )
