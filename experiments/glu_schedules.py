"""gaussian_linear_uniform: which schedule, network and box map, at 10^4 simulations.

Usage (each configuration in its own process, e.g. all at once on a GPU machine; then one
vmapped C2ST over every observation and fold of every configuration)::

    python experiments/glu_schedules.py train NAME      # for NAME in CONFIGS
    python experiments/glu_schedules.py score [NAME ...]

Draws go to $DRAWS (default /tmp/glu_draws), the scores to $OUT/scores.json (default
/tmp/glu_out). C2ST: the sbibm protocol with the JAX classifier (diagnostics.c2st_many's
training, same folds and seeds). "*_reject" configurations train an unconstrained flow and
keep the draws inside the box (what sbi's NPE does); the others declare the box with
Adapter.constrain.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))  # the shared helpers of sbibm_c2st
from sbibm_c2st import SBIBM, box_adapter, holdout  # noqa: E402

OUT = Path(os.environ.get("OUT", "/tmp/glu_out"))
DRAWS = Path(os.environ.get("DRAWS", "/tmp/glu_draws"))
EPOCHS_SCALE = float(os.environ.get("EPOCHS_SCALE", "1"))
SEED = 0

# name: (network, constrain, epochs, batch, extra). "seed" sets both the 10^4 simulations
# and the training seed, so seeds differ in data and initialization.
CONFIGS = {
    "sp_probit": ("coupling_spline", "probit", 300, 128, {}),
    "sp_probit_s2": ("coupling_spline", "probit", 300, 128, {"seed": 10}),
    "af_probit": ("coupling_affine", "probit", 300, 128, {}),
    "sp_probit_long": ("coupling_spline", "probit", 600, 256, {}),
    "fm_probit": ("flow_matching", "probit", 300, 128, {}),
    "sp_reject": ("coupling_spline", None, 300, 128, {}),
    "af_reject": ("coupling_affine", None, 300, 128, {}),
    "sp_logit": ("coupling_spline", "sigmoid", 300, 128, {}),
    "fm_reject": ("flow_matching", None, 300, 128, {}),
    "L600_s0": ("coupling_spline", "probit", 600, 256, {}),
    "L600_s10": ("coupling_spline", "probit", 600, 256, {"seed": 10}),
    "L600_s20": ("coupling_spline", "probit", 600, 256, {"seed": 20}),
    "L600_s30": ("coupling_spline", "probit", 600, 256, {"seed": 30}),
    "L1200_b512": ("coupling_spline", "probit", 1200, 512, {}),
    "L600_w256": (
        "coupling_spline",
        "probit",
        600,
        256,
        {"net": {"subnet_kwargs": {"widths": (256, 256)}}},
    ),
    "L600_d8": ("coupling_spline", "probit", 600, 256, {"net": {"depth": 8}}),
    "L600_nodrop": (
        "coupling_spline",
        "probit",
        600,
        256,
        {"net": {"subnet_kwargs": {"dropout": 0.0}}},
    ),
    "E1200_B512_s10": ("coupling_spline", "probit", 1200, 512, {"seed": 10}),
    "E1200_B512_s20": ("coupling_spline", "probit", 1200, 512, {"seed": 20}),
    "E1200_B512_d8": ("coupling_spline", "probit", 1200, 512, {"net": {"depth": 8}}),
    "E2400_B1024": ("coupling_spline", "probit", 2400, 1024, {}),
    "E2000_B512": ("coupling_spline", "probit", 2000, 512, {}),
    "sp_probit_t": (
        "coupling_spline",
        "probit",
        300,
        128,
        {"net": {"base_distribution": "student_t"}},
    ),
}
# Mixtures of configurations trained on DIFFERENT simulations (each seed its own 10^4): they
# spend K x the budget, so they are no 10^4 result; the same-data ensemble is
# `sbibm_c2st.py --ensemble`.
ENSEMBLES = {
    "ens_sp2": ["sp_probit", "sp_probit_s2"],
    "ens_sp_af": ["sp_probit", "af_probit"],
    "ens_sp_fm": ["sp_probit", "fm_probit"],
    "ens2": ["L600_s0", "L600_s10"],
    "ens4": ["L600_s0", "L600_s10", "L600_s20", "L600_s30"],
    "ens_1200_600": ["L1200_b512", "L600_s10"],
}


def load_ref(k):
    d = SBIBM / "gaussian_linear_uniform" / f"num_observation_{k}"
    obs = np.loadtxt(d / "observation.csv", delimiter=",", skiprows=1, ndmin=2)
    ref = np.loadtxt(d / "reference_posterior_samples.csv.bz2", delimiter=",", skiprows=1)
    return obs[0], ref


def train(name):
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
    import amortized as bf

    net_name, constrain, epochs, batch, extra = CONFIGS[name]
    epochs = max(1, int(epochs * EPOCHS_SCALE))
    seed = extra.get("seed", SEED)
    net = {
        "coupling_spline": lambda: bf.networks.CouplingFlow(
            transform="spline", **extra.get("net", {})
        ),
        "coupling_affine": lambda: bf.networks.CouplingFlow(**extra.get("net", {})),
        "flow_matching": lambda: bf.networks.FlowMatching(),
    }[net_name]()
    sim = bf.simulators.benchmarks.get_task("gaussian_linear_uniform")
    if constrain:
        ad = box_adapter("gaussian_linear_uniform", constrain)
        wf = bf.BasicWorkflow(simulator=sim, inference_network=net, adapter=ad)
    else:
        wf = bf.BasicWorkflow(
            simulator=sim,
            inference_network=net,
            inference_variables="theta",
            inference_conditions="x",
        )
    train, val = holdout(wf.simulate(10000, seed=seed), 10000)
    t0 = time.perf_counter()
    hist = wf.fit_offline(
        train,
        epochs=epochs,
        batch_size=batch,
        validation_data=val,
        seed=seed + 1,
        restore_best=True,
        progress=False,
    )
    tt = time.perf_counter() - t0
    obs = np.stack([load_ref(k)[0] for k in range(1, 11)])
    n = 10000 if constrain else 40000
    draws = np.asarray(wf.sample(conditions={"x": obs}, num_samples=n, seed=seed + 2)["theta"])
    acc = None
    if not constrain:
        inside = np.all(np.abs(draws) < 1.0, axis=-1)
        acc = inside.mean(axis=1).tolist()
        kept = [d[m] for d, m in zip(draws, inside, strict=True)]
        for r in range(20):
            if min(len(k) for k in kept) >= 10000:
                break
            more = np.asarray(
                wf.sample(conditions={"x": obs}, num_samples=n, seed=seed + 100 + r)["theta"]
            )
            kept = [
                np.concatenate([k, d[np.all(np.abs(d) < 1.0, axis=-1)]])
                for k, d in zip(kept, more, strict=True)
            ]
        draws = np.stack([k[:10000] for k in kept])
    DRAWS.mkdir(parents=True, exist_ok=True)
    np.save(DRAWS / f"{name}.npy", draws.astype(np.float32))
    info = {
        "name": name,
        "train_s": tt,
        "best_val": float(np.min(hist["val_loss"])),
        "accept": acc,
        "epochs": epochs,
    }
    print(json.dumps(info), flush=True)
    (DRAWS / f"{name}.json").write_text(json.dumps(info))


def score(names):
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
    from amortized.diagnostics.c2st import c2st_many

    refs = [load_ref(k)[1] for k in range(1, 11)]
    avail = {nm: np.load(DRAWS / f"{nm}.npy") for nm in names if (DRAWS / f"{nm}.npy").exists()}
    for en, parts in ENSEMBLES.items():
        if all(p in avail for p in parts):
            h = 10000 // len(parts)
            avail[en] = np.stack(
                [
                    np.concatenate([avail[p][i][j * h : (j + 1) * h] for j, p in enumerate(parts)])
                    for i in range(10)
                ]
            )
    t0 = time.perf_counter()
    # one vmapped classifier run for every fold of every observation of every configuration
    flat = c2st_many(refs * len(avail), [dr[i] for dr in avail.values() for i in range(10)])
    print(f"C2ST of {len(avail)} configurations: {time.perf_counter() - t0:.0f}s", flush=True)
    out = {}
    for j, nm in enumerate(avail):
        per = flat[10 * j : 10 * (j + 1)]
        out[nm] = {"mean": float(np.mean(per)), "per_obs": np.round(per, 4).tolist()}
        info = DRAWS / f"{nm}.json"
        if info.exists():
            out[nm].update(json.loads(info.read_text()))
        print(nm, round(out[nm]["mean"], 4), out[nm]["per_obs"], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scores.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2])
    else:
        score(sys.argv[2:] or list(CONFIGS))
