"""Where do the GEV benchmark's inaccurate datasets come from? (issue 18 follow-up)

Loads a workflow saved by ``python benchmarks/gev.py --save-model PATH`` and, for the same
50 checked datasets as the benchmark, compares against the NUTS reference (seed i):
the amortized draws alone, the workflow's accepted draws (and their step, k-hat), and a
second NUTS run with another seed (the reference's own noise). One row per dataset, worst
first, with the marginal means and sds of the worst parameter.

    python experiments/gev_diagnosis.py PATH [--check 50]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from gev import gev_model, marginal_tv_w1, nuts_reference  # noqa: E402

NAMES = ("mu", "sigma", "xi")


def stack(draws, j):
    return np.concatenate([np.asarray(draws[k][j]).reshape(-1, 1) for k in NAMES], axis=1)


def main() -> None:
    import amortized as bf

    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--datasets", type=int, default=1000)
    p.add_argument("--check", type=int, default=50)
    p.add_argument("--out", default=None)
    p.add_argument("--only", default=None, help="comma-separated dataset indices")
    a = p.parse_args()
    model = bf.NumPyroModel(gev_model(1.0), observed="y")
    wf = bf.BasicWorkflow.load(a.model, simulator=model.simulator)
    wide = bf.NumPyroModel(gev_model(2.0), observed="y")
    test = wide.simulator.sample(a.datasets, seed=5)
    check = np.random.default_rng(3).choice(a.datasets, size=a.check, replace=False)
    if a.only:
        check = np.array([int(i) for i in a.only.split(",")])
    ys = np.asarray(test["y"])[check]
    res = bf.AmortizedBayesianWorkflow(wf, model, num_samples=1000).run({"y": ys}, seed=2)
    amort = wf.sample(conditions={"y": ys}, num_samples=1000, seed=2)
    rows = []
    for j, i in enumerate(check):
        ref = nuts_reference(test["y"][i], seed=int(i))
        ref2 = nuts_reference(test["y"][i], seed=int(i) + 100_000)
        ours, am = stack(res.draws, j), stack(amort, j)
        tv, w1 = marginal_tv_w1(ours, ref)
        worst = int(np.argmax([marginal_tv_w1(ours[:, [c]], ref[:, [c]])[0] for c in range(3)]))

        def log_joint(draws, y=ys[j]):
            theta = {k: draws[None, :, c] for c, k in enumerate(NAMES)}
            lp = np.asarray(model.log_joint(theta, {"y": y[None]}))[0]
            return [float(np.mean(lp)), float(np.max(lp)), float(np.mean(np.isfinite(lp)))]

        rows.append(
            {
                "dataset": int(i),
                "step": str(res.step[j]),
                "khat": float(res.diagnostics["khat"][j]),
                "psis_ess": float(res.diagnostics["psis_ess"][j]),
                "ood": bool(res.diagnostics["ood"][j]),
                "tv": tv,
                "w1": w1,
                "tv_amortized": marginal_tv_w1(am, ref)[0],
                "tv_nuts_seed2": marginal_tv_w1(ref2, ref)[0],
                "worst": NAMES[worst],
                "ours_mean_sd": [float(ours[:, worst].mean()), float(ours[:, worst].std())],
                "nuts_mean_sd": [float(ref[:, worst].mean()), float(ref[:, worst].std())],
                "nuts2_mean_sd": [float(ref2[:, worst].mean()), float(ref2[:, worst].std())],
                "log_joint_ours_mean_max_finite": log_joint(ours),
                "log_joint_nuts_mean_max_finite": log_joint(ref),
            }
        )
    rows.sort(key=lambda r: -r["tv"])
    for r in rows:
        print(
            f"{r['dataset']:4d} {r['step']:9s} khat {r['khat']:5.2f} ess {r['psis_ess']:7.0f} "
            f"ood {int(r['ood'])} tv {r['tv']:.3f} (amortized {r['tv_amortized']:.3f}, "
            f"nuts vs nuts {r['tv_nuts_seed2']:.3f}) w1 {r['w1']:.4f} {r['worst']}: "
            f"ours {r['ours_mean_sd'][0]:.3f}+-{r['ours_mean_sd'][1]:.3f} "
            f"nuts {r['nuts_mean_sd'][0]:.3f}+-{r['nuts_mean_sd'][1]:.3f} "
            f"nuts2 {r['nuts2_mean_sd'][0]:.3f}+-{r['nuts2_mean_sd'][1]:.3f}",
            flush=True,
        )
        print(
            "   log joint (mean, max, finite share): ours",
            np.round(r["log_joint_ours_mean_max_finite"], 2),
            "nuts",
            np.round(r["log_joint_nuts_mean_max_finite"], 2),
            flush=True,
        )
    print(
        "mean tv",
        np.mean([r["tv"] for r in rows]),
        "nuts vs nuts",
        np.mean([r["tv_nuts_seed2"] for r in rows]),
    )
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
