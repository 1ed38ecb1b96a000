"""Issue 21 benchmark: amortized model comparison against exact Bayes factors.

Two normal models that differ only in the prior of the mean, x_1..x_N ~ N(mu, 1):
M0: mu ~ N(0, 0.5^2), M1: mu ~ N(0, 2^2), equal prior probabilities. With N fixed the
sample mean is sufficient and the Bayes factor is exact:
log BF_10 = log N(xbar; 0, 4 + 1/N) - log N(xbar; 0, 0.25 + 1/N).

Training: ``ModelComparisonWorkflow`` with its defaults through the documented API
(the classifier sees x directly, or x as a set through a DeepSet summary with
``--summary deep_set``), ``fit_offline`` on 2 x 10^4 simulations (early stopping).
Scored on 20,000 fresh held-out simulations: the mean absolute error of the predicted
log Bayes factor over the first 500 datasets with |exact log BF| < 5 (the acceptance
protocol) and over all of them with |log BF| < 5, the expected calibration error of the
predicted probabilities (10 bins) beside the noise floor that exact probabilities show on
the same datasets, and the accuracy of the predicted against the exact most probable model.

    python benchmarks/model_comparison.py [--n-obs 10] [--summary none|deep_set] [--write-md]
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
from sbibm_c2st import RESULTS, machine, replace_block  # noqa: E402

PRIOR_SD = (0.5, 2.0)


def simulators(n_obs: int, as_set: bool):
    """x is ``(N, 1)`` (a set of N rows) or ``(N,)`` (a vector of N conditions)."""
    import amortized as bf

    shape = (n_obs, 1) if as_set else (n_obs,)

    def model(sd):
        return bf.make_simulator(
            [
                lambda: {"mu": np.random.normal(0.0, sd, size=1)},
                lambda mu: {"x": mu + np.random.normal(size=shape)},
            ]
        )

    return bf.simulators.ModelComparisonSimulator([model(sd) for sd in PRIOR_SD])


def exact_log_bf(x: np.ndarray) -> np.ndarray:
    """log p(x | M1) - log p(x | M0) from the sample mean, ``x (n, N)`` or ``(n, N, 1)``."""
    n_obs = x.shape[1]
    xbar = x.reshape(len(x), -1).mean(axis=1)

    def log_normal(v):
        return -0.5 * np.log(2 * np.pi * v) - 0.5 * xbar**2 / v

    return log_normal(PRIOR_SD[1] ** 2 + 1 / n_obs) - log_normal(PRIOR_SD[0] ** 2 + 1 / n_obs)


def run(args) -> dict:
    import amortized as bf
    from amortized.diagnostics.model_comparison import expected_calibration_error

    sim = simulators(args.n_obs, as_set=args.summary == "deep_set")
    if args.summary == "deep_set":
        wf = bf.ModelComparisonWorkflow(
            simulator=sim,
            summary_variables="x",
            summary_network=bf.networks.DeepSet(),
            model_names=["narrow", "wide"],
        )
    else:
        wf = bf.ModelComparisonWorkflow(
            simulator=sim,
            inference_conditions="x",
            model_names=["narrow", "wide"],
        )  # fmt: skip
    train = sim.sample(args.num_sims, seed=args.seed)
    train.pop("mu")  # the models' parameter: not what the classifier sees
    t0 = time.perf_counter()
    hist = wf.fit_offline(train, seed=args.seed, progress=False)
    fit_s = time.perf_counter() - t0

    test = sim.sample(args.num_test, seed=args.seed + 1000)
    test.pop("mu")
    t0 = time.perf_counter()
    est = wf.estimate({"x": test["x"]})
    est_s = time.perf_counter() - t0
    pred = est["log_bayes_factors"][:, 1]
    exact = exact_log_bf(test["x"])
    inside = np.abs(exact) < 5
    err = np.abs(pred - exact)
    exact_probs = 1 / (1 + np.exp(-exact))
    ece = expected_calibration_error(est["model_probs"], test["model_indices"])
    ece_exact = expected_calibration_error(
        np.stack([1 - exact_probs, exact_probs], 1), test["model_indices"]
    )
    return {
        "n_obs": args.n_obs,
        "summary": args.summary,
        "num_sims": args.num_sims,
        "epochs": len(hist["loss"]),
        "best_epoch": hist.get("best_epoch"),
        "fit_s": round(fit_s, 1),
        "estimate_ms_per_20k": round(1000 * est_s, 1),
        "mae_log_bf_first500": float(np.mean(err[inside][:500])),
        "mae_log_bf_all_inside": float(np.mean(err[inside])),
        "num_inside": int(inside.sum()),
        "ece": float(np.mean(ece["values"])),
        "ece_floor": float(np.mean(ece["if_calibrated"])),
        "ece_exact_probs": float(np.mean(ece_exact["values"])),
        "agreement_with_exact": float(np.mean((pred > 0) == (exact > 0))),
        "machine": machine(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-obs", type=int, default=10)
    p.add_argument("--summary", choices=["none", "deep_set"], default="none")
    p.add_argument("--num-sims", type=int, default=20_000)
    p.add_argument("--num-test", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-md", action="store_true")
    args = p.parse_args()
    res = run(args)
    print(json.dumps(res, indent=1))
    out = RESULTS / f"model_comparison_{args.summary}_n{args.n_obs}.json"
    out.write_text(json.dumps(res, indent=1))
    if args.write_md:
        rows = []
        for f in sorted(RESULTS.glob("model_comparison_*.json")):
            r = json.loads(f.read_text())
            how = "x as a set, DeepSet" if r["summary"] == "deep_set" else "x as a vector"
            rows.append(
                f"| N = {r['n_obs']}, {how} "
                f"| {r['mae_log_bf_first500']:.3f} | {r['mae_log_bf_all_inside']:.3f} "
                f"| {r['ece']:.4f} | {r['ece_exact_probs']:.4f} | {r['agreement_with_exact']:.3f} "
                f"| {r['fit_s']:.0f} s ({r['epochs']} epochs) | {r['machine']} |"
            )
        table = "\n".join(
            [
                "| setting | MAE log BF (first 500 with \\|log BF\\| < 5) "
                "| MAE log BF (all with \\|log BF\\| < 5) | ECE (20k datasets) "
                "| ECE of the exact probabilities | same favoured model as exact "
                "| training | machine |",
                "|---|---|---|---|---|---|---|---|",
                *rows,
            ]
        )
        replace_block("model-comparison", table)


if __name__ == "__main__":
    main()
