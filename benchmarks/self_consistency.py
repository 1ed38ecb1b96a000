"""Issue 24: self-consistency training on unlabeled observed datasets, on the GEV case study
of the amortized Bayesian workflow (``benchmarks/gev.py``).

The same network (DeepSet(8) + affine CouplingFlow, the library's other defaults) is trained
twice on the same 10^4 simulations: without, and with ``bf.SelfConsistency(unlabeled=test)``
where ``test`` are the 1,000 test datasets (no parameters) from priors twice as wide as the
training priors, so that some lie outside the simulations. Reported for each: training
time; accuracy of the amortized draws themselves (no importance sampling) against NumPyro
NUTS on ``--check`` random datasets (mean marginal total variation from 50-bin histograms,
Wasserstein-1), and the amortized Bayesian workflow on all test datasets: the share
resolved before the MCMC steps (amortized + PSIS) and the share left to NUTS.

    python benchmarks/self_consistency.py [--datasets 1000] [--check 50] [--write-md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gev import gev_model, marginal_tv_w1, nuts_reference  # noqa: E402
from sbibm_c2st import RESULTS, machine, replace_block  # noqa: E402

NAMES = ("mu", "sigma", "xi")


def workflow(bf, model):
    adapter = (
        bf.Adapter()
        .convert_dtype()
        .constrain("sigma", lower=0.0)
        .constrain("xi", lower=-0.6, upper=0.6)
        .concatenate(list(NAMES), into="inference_variables")
        .expand_dims("y", axis=-1)
        .rename("y", "summary_variables")
    )
    return bf.BasicWorkflow(
        simulator=model,
        adapter=adapter,
        inference_network=bf.networks.CouplingFlow(),
        summary_network=bf.networks.DeepSet(summary_dim=8),
    )


def run_variant(bf, model, sims, test, check, refs, self_consistency, a) -> dict:
    wf = workflow(bf, model)
    t = time.perf_counter()
    history = wf.fit_offline(
        sims,
        batch_size=64,
        validation_data=500,
        seed=1,
        progress=False,
        self_consistency=self_consistency,
    )
    train_s = time.perf_counter() - t
    draws = wf.sample(num_samples=1000, conditions={"y": test["y"][check]}, seed=4)
    tv, w1 = [], []
    for j, i in enumerate(check):
        if int(i) not in refs:
            continue
        ours = np.concatenate([draws[k][j].reshape(1000, -1) for k in NAMES], axis=1)
        t_, w_ = marginal_tv_w1(ours, refs[int(i)])
        tv.append(t_)
        w1.append(w_)
    abw = bf.AmortizedBayesianWorkflow(wf, model, num_samples=1000)
    t = time.perf_counter()
    res = abw.run({"y": test["y"]}, seed=2)
    abw_s = time.perf_counter() - t
    c = res.counts()
    n = a.datasets
    return {
        "train_seconds": train_s,
        "epochs": len(history["loss"]),
        "amortized_tv": float(np.mean(tv)),
        "amortized_w1": float(np.mean(w1)),
        "amortized_tv_within_0.2": float(np.mean(np.asarray(tv) <= 0.2)),
        "checked": len(tv),
        "counts": c,
        "accepted_before_mcmc": (c["amortized"] + c["psis"]) / n,
        "left_to_nuts": c["nuts"] / n,
        "workflow_seconds": abw_s,
    }


def write_md(out: dict) -> None:
    """The BENCHMARKS.md table of a run's results (``results/self_consistency.json``)."""
    lines = [
        "| self-consistency on the test datasets | training (s) | epochs | amortized draws: "
        "mean TV to NUTS | W1 | TV <= 0.2 | accepted before MCMC (amortized + PSIS) | left to "
        "NUTS | workflow (s) | machine |",
        "|---" * 10 + "|",
    ]
    for name in ("without", "with"):
        r = out[name]
        c = r["counts"]
        lines.append(
            f"| {name} | {r['train_seconds']:.0f} | {r['epochs']} | {r['amortized_tv']:.3f} | "
            f"{r['amortized_w1']:.4f} | {r['amortized_tv_within_0.2']:.0%} of {r['checked']} | "
            f"{r['accepted_before_mcmc']:.1%} ({c['amortized']} + {c['psis']}) | "
            f"{r['left_to_nuts']:.1%} | {r['workflow_seconds']:.0f} | {out['machine']} |"
        )
    replace_block("self_consistency", "\n".join(lines))


def main() -> None:
    import amortized as bf

    p = argparse.ArgumentParser()
    p.add_argument("--datasets", type=int, default=1000)
    p.add_argument("--budget", type=int, default=10_000)
    p.add_argument("--check", type=int, default=50)
    p.add_argument("--write-md", action="store_true")
    a = p.parse_args()
    model = bf.NumPyroModel(gev_model(1.0), observed="y")
    wide = bf.NumPyroModel(gev_model(2.0), observed="y")
    test = wide.simulator.sample(a.datasets, seed=5)
    rng = np.random.default_rng(3)
    check = rng.choice(a.datasets, size=min(a.check, a.datasets), replace=False)
    refs = {}
    for i in check:
        draws, rhat = nuts_reference(test["y"][i], seed=int(i), with_rhat=True)
        if rhat < 1.01:  # a reference whose chains disagree is no reference
            refs[int(i)] = draws
    sims = model.simulator.sample(a.budget, seed=0)
    out = {"datasets": a.datasets, "references": len(refs), "machine": machine()}
    for name, sc in (
        ("without", None),
        ("with", bf.SelfConsistency(unlabeled={"y": test["y"]})),
    ):
        out[name] = run_variant(bf, model, sims, test, check, refs, sc, a)
        print(name, json.dumps(out[name]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "self_consistency.json").write_text(json.dumps(out, indent=1))
    if a.write_md:
        write_md(out)


if __name__ == "__main__":
    main()
