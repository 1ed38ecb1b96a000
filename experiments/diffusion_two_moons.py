"""Issue 20 (session 19): DiffusionModel on sbibm two_moons, observation 1, 10^4
simulations, 100 epochs of batch 256 without early stopping; C2ST of 5,000 draws against the
reference. Part 1: the same trained network sampled by Heun 20 / 100 steps and
Euler-Maruyama 500 steps. Part 2: other schedules and no dropout. Part 3: FlowMatching.
Part 4: the spline CouplingFlow.

    python experiments/diffusion_two_moons.py
"""

import os
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pandas as pd

import amortized as bf
from amortized.diagnostics import c2st

SBIBM = Path(
    os.environ.get("AMORTIZED_SBIBM")
    or Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sbibm"
)

sim = bf.simulators.benchmarks.two_moons()
wf = bf.BasicWorkflow(
    simulator=sim,
    inference_network=bf.networks.DiffusionModel(),
    inference_variables="theta",
    inference_conditions="x",
)
wf.fit_offline(
    sim.sample(10000, seed=0),
    epochs=100,
    batch_size=256,
    seed=1,
    progress=False,
    early_stopping=False,
)
root = str(SBIBM / "two_moons" / "num_observation_1")
obs = pd.read_csv(root + "/observation.csv").values.astype(np.float32)
ref = pd.read_csv(root + "/reference_posterior_samples.csv.bz2").values
net = wf.approximator.nets.inference
for method, steps in (("heun", 20), ("heun", 100), ("euler_maruyama", 500)):
    cfg = dict(net.config)
    cfg["integrate_kwargs"] = dict(cfg["integrate_kwargs"], method=method, steps=steps)
    new = bf.networks.DiffusionModel(**cfg).build(net.dim, net.cond_dim, jax.random.key(0))
    new = eqx.tree_at(lambda n: n.field, new, net.field)
    wf.approximator.nets = eqx.tree_at(lambda n: n.inference, wf.approximator.nets, new)
    d = wf.sample(conditions={"x": obs}, num_samples=5000, seed=3)["theta"][0]
    print(method, steps, round(float(c2st(ref[:5000], d)), 3), flush=True)

sim = bf.simulators.benchmarks.two_moons()
data = sim.sample(10000, seed=0)
root = str(SBIBM / "two_moons" / "num_observation_1")
obs = pd.read_csv(root + "/observation.csv").values.astype(np.float32)
ref = pd.read_csv(root + "/reference_posterior_samples.csv.bz2").values


def fit_and_score(label, network):
    """The same fit and comparison for every network of parts 2-4."""
    t = time.time()
    wf = bf.BasicWorkflow(
        simulator=sim,
        inference_network=network,
        inference_variables="theta",
        inference_conditions="x",
    )
    wf.fit_offline(data, epochs=100, batch_size=256, seed=1, progress=False, early_stopping=False)
    d = wf.sample(conditions={"x": obs}, num_samples=5000, seed=3)["theta"][0]
    print(label, round(float(c2st(ref[:5000], d)), 3), round(time.time() - t), "s", flush=True)


for label, kw in (
    ("edm p_mean -2.5 p_std 2", dict(schedule_kwargs={"p_mean": -2.5, "p_std": 2.0})),
    ("cosine", dict(noise_schedule="cosine")),
    ("edm no dropout", dict(subnet_kwargs={"dropout": 0.0})),
):
    fit_and_score(label, bf.networks.DiffusionModel(**kw))
# Part 3: FlowMatching (same TimeMLP, same fit), for comparison
fit_and_score("flow_matching", bf.networks.FlowMatching())
# Part 4: the spline CouplingFlow under the same fit and comparison (checks the setup)
fit_and_score("coupling spline", bf.networks.CouplingFlow(transform="spline"))
