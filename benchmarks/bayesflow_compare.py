"""Side by side with BayesFlow 2.1 (JAX backend) on the same simulations and the same C2ST.

BayesFlow needs Python >= 3.12; run this file with a Python that has ``bayesflow`` and
``jax`` installed (e.g. ``python3.12 -m venv bfenv && bfenv/bin/pip install bayesflow jax
scikit-learn``). It imports nothing from amortized except the C2ST file, loaded by path,
so both sides are scored by the same code. The simulations come from amortized's simulators
via ``python benchmarks/bayesflow_compare.py --make-data`` (run with amortized's Python).

    python  benchmarks/bayesflow_compare.py --make-data           # amortized's Python
    bfenv/bin/python benchmarks/bayesflow_compare.py --speed        # BayesFlow timings
    bfenv/bin/python benchmarks/bayesflow_compare.py --speed-set    # with a SetTransformer
    bfenv/bin/python benchmarks/bayesflow_compare.py --accuracy two_moons gaussian_linear
    bfenv/bin/python benchmarks/bayesflow_compare.py --accuracy bernoulli_glm --classifier jax

Results go to ``benchmarks/results/bayesflow_*.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results"
DATA = RESULTS / "bayesflow_data"
SBIBM = Path(
    os.environ.get("AMORTIZED_SBIBM") or HERE.parent.parent / "shared" / "benchmarks" / "sbibm"
)


def make_data(tasks):
    import warnings

    import amortized as bf

    DATA.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        sims = bf.simulators.benchmarks.get_task(task).sample(10_000, seed=0)
        np.savez(DATA / f"{task}.npz", theta=sims["theta"], x=sims["x"])
    # sets for the summary-network speed test: 10^4 datasets of N = 50 exchangeable draws
    from normal_inverse_gamma import simulator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one shared N is intended here
        sims = simulator().sample(10_000, seed=0, N=50)
    theta = np.concatenate([sims["mu"], sims["sigma"]], axis=1)
    np.savez(DATA / "sets.npz", theta=theta, x=sims["x"])


#: SetTransformer speed test: the same dimensions on both sides (BayesFlow's defaults:
#: summary_dim 16, two blocks of width 64 with 4 heads, 4 pooling seeds, feed-forward
#: expansion 4 -> 256), CouplingFlow depth 6 of 128 x 128, batch 64, 10^4 sets of 50.
SET_BATCH = 64


def _c2st():
    """amortized's c2st, loaded without the package: its folder is registered as a bare
    package so that c2st.py finds _classifier.py (the compiled classifier) beside it."""
    import types

    folder = HERE.parent / "src" / "amortized" / "diagnostics"
    pkg = types.ModuleType("_c2st_files")
    pkg.__path__ = [str(folder)]
    sys.modules["_c2st_files"] = pkg
    spec = importlib.util.spec_from_file_location("_c2st_files.c2st", folder / "c2st.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_c2st_files.c2st"] = mod
    spec.loader.exec_module(mod)
    return mod.c2st


def _workflow(**net_kwargs):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import bayesflow as bf

    return bf.BasicWorkflow(
        inference_network=bf.networks.CouplingFlow(**net_kwargs),
        inference_variables=["theta"],
        inference_conditions=["x"],
    )


def _load(task):
    d = np.load(DATA / f"{task}.npz")
    return {"theta": d["theta"].astype("float32"), "x": d["x"].astype("float32")}


def speed(fits: int = 3, save: bool = True):
    data = _load("two_moons")
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    # fits of 6 epochs (as speed.py times ours); the first epoch of each compiles;
    # the median over fits of the median of epochs 2..6 is reported
    epochs = []
    for _ in range(fits):
        times = []
        wf = _workflow(depth=6, subnet_kwargs={"widths": [128, 128]})
        wf.fit_offline(data, epochs=6, batch_size=256, verbose=0, callbacks=[EpochTimer()])
        epochs.append(float(np.median(times[1:])))
    epoch = float(np.median(epochs))
    obs = {"x": data["x"][:1]}
    wf.sample(conditions=obs, num_samples=10_000)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        wf.sample(conditions=obs, num_samples=10_000)
        times.append(time.perf_counter() - t)
    res = {
        "coupling_epoch_s": epoch,
        "coupling_epoch_s_fits": epochs,
        "coupling_10k_draws_s": float(np.median(times)),
    }
    print(json.dumps(res, indent=1))
    if not save:
        return
    res_file = RESULTS / "bayesflow_speed.json"
    old = json.loads(res_file.read_text()) if res_file.exists() else {}
    res_file.write_text(json.dumps(old | res, indent=1))  # keeps the --speed-set timing


def speed_set():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import bayesflow as bf
    import keras

    d = np.load(DATA / "sets.npz")
    data = {"theta": d["theta"].astype("float32"), "x": d["x"].astype("float32")}
    times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    wf = bf.BasicWorkflow(
        inference_network=bf.networks.CouplingFlow(depth=6, subnet_kwargs={"widths": [128, 128]}),
        summary_network=bf.networks.SetTransformer(
            summary_dim=16, embed_dims=(64, 64), num_heads=(4, 4), num_seeds=4
        ),
        inference_variables=["theta"],
        summary_variables=["x"],
    )
    wf.fit_offline(data, epochs=4, batch_size=SET_BATCH, verbose=0, callbacks=[EpochTimer()])
    res_file = RESULTS / "bayesflow_speed.json"
    res = json.loads(res_file.read_text()) if res_file.exists() else {}
    res["set_transformer_epoch_s"] = float(np.median(times[1:]))
    print(json.dumps(res, indent=1))
    res_file.write_text(json.dumps(res, indent=1))


def accuracy(tasks, observations=(1, 2, 3, 4, 5), classifier="sklearn"):
    c2st = _c2st()
    out = RESULTS / "bayesflow_accuracy.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for task in tasks:
        wf = _workflow()  # BayesFlow's default CouplingFlow
        t = time.perf_counter()
        wf.fit_offline(_load(task), epochs=100, batch_size=32, verbose=0)
        train_s = time.perf_counter() - t
        scores = []
        for k in observations:
            d = SBIBM / task / f"num_observation_{k}"
            obs = np.loadtxt(d / "observation.csv", delimiter=",", skiprows=1, ndmin=2)
            ref = np.loadtxt(d / "reference_posterior_samples.csv.bz2", delimiter=",", skiprows=1)
            draws = wf.sample(conditions={"x": obs.astype("float32")}, num_samples=10_000)
            scores.append(c2st(ref, np.asarray(draws["theta"][0]), classifier=classifier))
        results[task] = {
            "c2st": scores,
            "c2st_mean": float(np.mean(scores)),
            "observations": list(observations),
            "train_seconds": train_s,
            "config": "CouplingFlow() defaults, 100 epochs, batch 32",
            "c2st_classifier": classifier,
        }
        print(task, results[task], flush=True)
        out.write_text(json.dumps(results, indent=1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--make-data", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--speed-set", action="store_true")
    p.add_argument(
        "--speed-once",
        action="store_true",
        help="one fit's coupling-flow epoch time as JSON, nothing saved (for speed.py "
        "--versus-bayesflow)",
    )
    p.add_argument("--accuracy", nargs="*")
    p.add_argument(
        "--classifier",
        default="sklearn",
        choices=["sklearn", "jax"],
        help="C2ST classifier (see amortized.diagnostics.c2st)",
    )
    a = p.parse_args()
    tasks = [
        "two_moons",
        "gaussian_linear",
        "gaussian_linear_uniform",
        "slcp",
        "gaussian_mixture",
        "bernoulli_glm",
    ]
    if a.make_data:
        make_data(tasks)
    if a.speed:
        speed()
    if a.speed_set:
        speed_set()
    if a.speed_once:
        speed(fits=1, save=False)
    if a.accuracy is not None:
        accuracy(a.accuracy or tasks, classifier=a.classifier)


if __name__ == "__main__":
    main()
