"""Issue 21 benchmark: point estimates (guide 6.7) against an exact Gaussian posterior.

Conjugate linear regression with a fixed design: y = X beta + e, e ~ N(0, I_10), beta ~
N(0, I_3), X (10 x 3) fixed (seeded standard normal). The posterior is
N(S X^T y, S) with S = (X^T X + I)^-1, so means, quantiles and covariance are exact.

Two estimators trained through ``BasicWorkflow(inference_network=..., inference_variables=
"beta", inference_conditions="y")`` and ``fit_offline`` on 2 x 10^4 simulations with the
library's defaults: ``PointNetwork(["mean", "quantiles"], q=[0.05, 0.25, 0.5, 0.75, 0.95])``
and ``ScoringRuleNetwork({"normal": MvNormalScore()})``. Scored on held-out datasets:

- means: RMSE of (estimated - exact posterior mean) / exact posterior sd over 200 datasets
  (target <= 0.05);
- quantiles: the exact probability mass below each estimated quantile, averaged over 200
  datasets (the coverage with no Monte Carlo noise; target within 0.03 of the level), and
  the empirical coverage of the true betas on 5,000 datasets (binomial SE <= 0.007);
- covariance: mean relative Frobenius error |C_est - S|_F / |S|_F over 200 datasets
  (target <= 0.1).

    python benchmarks/point_estimates.py [--seeds 0 1 2] [--write-md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sbibm_c2st import RESULTS, machine, replace_block  # noqa: E402

DIM, N_OBS = 3, 10
LEVELS = [0.05, 0.25, 0.5, 0.75, 0.95]


def design() -> np.ndarray:
    return np.random.default_rng(2024).normal(size=(N_OBS, DIM))


def simulator():
    import amortized as bf

    X = design()
    return bf.make_simulator(
        [
            lambda: {"beta": np.random.normal(size=DIM)},
            lambda beta: {"y": X @ beta + np.random.normal(size=N_OBS)},
        ]
    )


def exact(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means ``(n, DIM)`` and the covariance ``(DIM, DIM)`` (the same for all)."""
    X = design()
    cov = np.linalg.inv(X.T @ X + np.eye(DIM))
    return y @ X @ cov, cov


def run(args, seed: int) -> dict:
    import amortized as bf
    from amortized.scoring_rules import MvNormalScore

    sim = simulator()
    train = sim.sample(args.num_sims, seed=seed)
    test = sim.sample(args.num_test, seed=seed + 1)
    mean, cov = exact(test["y"])
    sd = np.sqrt(np.diag(cov))
    out: dict = {"seed": seed, "num_sims": args.num_sims, "machine": machine()}

    nets = {
        "point": bf.networks.PointNetwork(["mean", "quantiles"], q=LEVELS),
        "mvnormal": bf.networks.ScoringRuleNetwork(scoring_rules={"normal": MvNormalScore()}),
    }
    for name, net in nets.items():
        wf = bf.BasicWorkflow(
            simulator=sim, inference_network=net, inference_variables="beta",
            inference_conditions="y",
        )  # fmt: skip
        t0 = time.perf_counter()
        hist = wf.fit_offline(train, seed=seed, progress=False)
        out[f"{name}_fit_s"] = round(time.perf_counter() - t0, 1)
        out[f"{name}_epochs"] = len(hist["loss"])
        est = wf.estimate({"y": test["y"]})["beta"]
        few = slice(0, 200)
        if name == "point":
            z = (est["mean"]["value"][few] - mean[few]) / sd
            out["mean_rmse_in_sd"] = float(np.sqrt(np.mean(z**2)))
            q = est["quantiles"]["value"]  # (n, levels, DIM)
            mass = stats.norm.cdf((q[few] - mean[few, None, :]) / sd)
            out["quantile_exact_coverage"] = mass.mean(axis=(0, 2)).round(4).tolist()
            below = test["beta"][:, None, :] <= q
            out["quantile_empirical_coverage"] = below.mean(axis=(0, 2)).round(4).tolist()
            out["quantile_worst_gap"] = float(
                np.max(np.abs(np.asarray(out["quantile_exact_coverage"]) - LEVELS))
            )
        else:
            c = est["normal"]["covariance"][few]
            rel = np.linalg.norm(c - cov, axis=(1, 2)) / np.linalg.norm(cov)
            out["covariance_rel_frobenius"] = float(rel.mean())
            zm = (est["normal"]["mean"][few] - mean[few]) / sd
            out["mvnormal_mean_rmse_in_sd"] = float(np.sqrt(np.mean(zm**2)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-sims", type=int, default=20_000)
    p.add_argument("--num-test", type=int, default=5_000)
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2],
        help="one training (and its own training and test data) per seed",
    )  # fmt: skip
    p.add_argument("--write-md", action="store_true")
    args = p.parse_args()
    runs = [run(args, seed) for seed in args.seeds]
    print(json.dumps(runs, indent=1))
    (RESULTS / "point_estimates.json").write_text(json.dumps(runs, indent=1))
    if args.write_md:
        write_md(runs)


def write_md(runs: list[dict]) -> None:
    def cells(key, fmt="{:.3f}"):
        return " / ".join(fmt.format(r[key]) for r in runs)

    def levels(key):
        return "; ".join(", ".join(f"{c:.3f}" for c in r[key]) for r in runs)

    def fits(name):
        return " / ".join(f"{r[name + '_fit_s']:.0f} s ({r[name + '_epochs']})" for r in runs)

    seeds = ", ".join(str(r["seed"]) for r in runs)
    table = "\n".join(
        [
            f"Seeds {seeds} (a training and its own held-out data each; results in that order).",
            "",
            "| estimator | measure | result | target | training (epochs) |",
            "|---|---|---|---|---|",
            f"| PointNetwork mean | RMSE of the mean in posterior sd (200 datasets) "
            f"| {cells('mean_rmse_in_sd')} | <= 0.05 | {fits('point')} |",
            f"| PointNetwork quantiles (0.05 ... 0.95) | largest gap of the exact mass below "
            f"an estimate from its level (200 datasets) | {cells('quantile_worst_gap')} "
            f"| <= 0.03 | same network |",
            f"| | exact mass below each estimate | {levels('quantile_exact_coverage')} | | |",
            f"| | empirical coverage of the true betas (5,000 datasets) "
            f"| {levels('quantile_empirical_coverage')} | | |",
            f"| MvNormalScore | relative Frobenius error of the covariance (200 datasets) "
            f"| {cells('covariance_rel_frobenius')} | <= 0.1 | {fits('mvnormal')} |",
            f"| MvNormalScore mean | RMSE in posterior sd | {cells('mvnormal_mean_rmse_in_sd')} "
            f"| | |",
            "",
            f"Machine: {runs[0]['machine']}. Command: `python benchmarks/point_estimates.py "
            f"--write-md`.",
        ]
    )
    replace_block("point-estimates", table)


if __name__ == "__main__":
    main()
