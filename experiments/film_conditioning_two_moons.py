"""Issue 20 (session 19): FlowMatching on sbibm two_moons, observation 1, with the condition
also fed to every FiLM layer (time embedding and x), 100 epochs of batch 256; C2ST of 5,000
draws against the reference.

    python experiments/film_conditioning_two_moons.py
"""

import os
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import amortized as bf
from amortized.diagnostics import c2st
from amortized.networks.mlp import TimeMLP, fourier_time_embedding


class CondTimeMLP(TimeMLP):
    cond_dim: int = eqx.field(static=True)

    def __init__(self, in_dim, out_dim, cond_dim, key, **kw):
        super().__init__(in_dim, out_dim, key=key, **kw)
        self.cond_dim = cond_dim
        keys = jax.random.split(jax.random.fold_in(key, 3), len(self.mlp.layers))
        self.film = tuple(
            eqx.tree_at(
                lambda l: (l.weight, l.bias),
                lin,
                (jnp.zeros_like(lin.weight), jnp.zeros_like(lin.bias)),
            )
            for lin in (
                eqx.nn.Linear(self.time_dim + cond_dim, 2 * layer.out_features, key=k)
                for layer, k in zip(self.mlp.layers, keys, strict=True)
            )
        )

    def __call__(self, x, t, key=None):
        emb = fourier_time_embedding(t, self.time_dim - 1)
        e = jnp.concatenate([emb, x[x.shape[0] - self.cond_dim :]])
        mods = [tuple(jnp.split(film(e), 2)) for film in self.film]
        return self.mlp(jnp.concatenate([x, emb]), key, mods)


class FM(bf.networks.FlowMatching):
    def __init__(self, **kw):
        super().__init__(**kw)
        if self.dim:
            self.field = CondTimeMLP(
                self.dim + self.cond_dim,
                self.dim,
                self.cond_dim,
                kw["key"],
                widths=[256, 256, 256],
                dropout=0.05,
            )


sim = bf.simulators.benchmarks.two_moons()
data = sim.sample(10000, seed=0)
SBIBM = Path(
    os.environ.get("AMORTIZED_SBIBM")
    or Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sbibm"
)
root = str(SBIBM / "two_moons" / "num_observation_1")
obs = pd.read_csv(root + "/observation.csv").values.astype(np.float32)
ref = pd.read_csv(root + "/reference_posterior_samples.csv.bz2").values
t = time.time()
wf = bf.BasicWorkflow(
    simulator=sim, inference_network=FM(), inference_variables="theta", inference_conditions="x"
)
wf.fit_offline(data, epochs=100, batch_size=256, seed=1, progress=False, early_stopping=False)
d = wf.sample(conditions={"x": obs}, num_samples=5000, seed=3)["theta"][0]
print(
    "flow_matching FiLM(t, c)",
    round(float(c2st(ref[:5000], d)), 3),
    round(time.time() - t),
    "s",
    flush=True,
)
