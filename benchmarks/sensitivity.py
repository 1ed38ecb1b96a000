"""Issue 23: prior power-scaling from one trained network, against exact posteriors.

Model (NumPyro): mu ~ N(0, 0.5^2), y_1..y_20 ~ N(mu, 2^2). The prior raised to gamma is
N(0, 0.25 / gamma), so every powered posterior is normal with precision 4 gamma + 5 and mean
(5 ybar) / (4 gamma + 5); the prior holds 44% of the precision at gamma = 1 (a prior that
matters). ``bf.sensitivity.power_scaling(model, gamma=(0.5, 2.0))`` draws log gamma uniformly
per simulation; one ``BasicWorkflow`` with the library defaults (default inference network,
``ps.default_adapter()``) trains with ``fit_offline`` on 2 x 10^4 simulations and nothing
else set. Scored on 5 held-out datasets simulated at each of gamma = 0.5, 1, 2: C2ST (sbibm
protocol, 10,000 draws against 10,000 exact draws) at that gamma, and the sensitivity
analysis (``power_scaling_analysis``) against the exact derivatives at gamma = 1:
d log sd / d log gamma = -w / 2 for the prior's share w of the precision (and 1 - w for the
likelihood), d mean = w (t - m) / sd.

    python benchmarks/sensitivity.py [--per-gamma 5] [--seeds 1 2 3] [--write-md]
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
import observed_route  # noqa: E402
from sbibm_c2st import RESULTS, machine, replace_block  # noqa: E402

S0, S, N_OBS = 0.5, 2.0, 20
GAMMAS = (0.5, 1.0, 2.0)
NUM_SIMULATIONS = 20_000
#: ``--observed-as``: "flat" (the default adapter) or "set" (observed_route.py)
OBSERVED_AS = "flat"
NUM_DRAWS = 10_000
TARGET = 0.55


def model(y=None):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, S0))
    with numpyro.plate("n", N_OBS):
        numpyro.sample("y", dist.Normal(mu, S), obs=y)


def exact(ybar, gamma, lam=1.0):
    a, b = gamma / S0**2, lam * N_OBS / S**2
    return b * ybar / (a + b), 1.0 / np.sqrt(a + b)


def exact_derivatives(ybar, side):
    a, b = 1 / S0**2, N_OBS / S**2
    w = (a if side == "prior" else b) / (a + b)
    m, sd = exact(ybar, 1.0)
    target = 0.0 if side == "prior" else ybar
    return w * (target - m) / sd, np.full_like(ybar, -w / 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-gamma", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--write-md", action="store_true")
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="write each seed's analysis report to REPORT/sensitivity_seed<N> (for "
        "scripts/screenshot_report.py)",
    )
    observed_route.add_argument(p, "sensitivity")
    a = p.parse_args()
    global OBSERVED_AS
    OBSERVED_AS = a.observed_as

    import amortized as bf
    from amortized.diagnostics import c2st

    ps = bf.sensitivity.power_scaling(bf.NumPyroModel(model, observed="y"), gamma=(0.5, 2.0))
    runs = [run(bf, c2st, ps, seed, a.per_gamma, a.report) for seed in a.seeds]
    out = {"machine": machine(), "simulations": NUM_SIMULATIONS, "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    name = "sensitivity" + ("_set" if OBSERVED_AS == "set" else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    if a.write_md and OBSERVED_AS == "flat":
        write_md(out, a.per_gamma)


def run(bf, c2st, ps, seed: int, per_gamma: int, report: Path | None = None) -> dict:
    """Train with the defaults (simulation and training seeds split from ``seed``) and
    score C2ST per power and the analysis against the exact derivatives."""
    seeds = np.random.SeedSequence(seed).generate_state(4)
    t0 = time.perf_counter()
    data = ps.simulator.sample(NUM_SIMULATIONS, seed=int(seeds[0]))
    simulate_s = time.perf_counter() - t0
    adapter, summary = observed_route.adapter_and_summary(bf, ps, OBSERVED_AS)
    wf = bf.BasicWorkflow(simulator=ps.simulator, adapter=adapter, summary_network=summary)
    t0 = time.perf_counter()
    history = wf.fit_offline(data, seed=int(seeds[1]))
    train_s = time.perf_counter() - t0

    # held-out datasets and reference draws are the same for every training seed
    rng = np.random.default_rng(3)
    c2 = {}
    for i, g in enumerate(GAMMAS):
        y = ps.simulator.sample(per_gamma, seed=10 + i, prior_power=g)["y"]
        draws = bf.sensitivity.prior_power_draws(
            wf, ps, {"y": y}, [g], num_samples=NUM_DRAWS, seed=int(seeds[2])
        )["mu"][:, 0, :, 0]
        m, sd = np.broadcast_arrays(*exact(y.mean(axis=1), g))
        c2[str(g)] = []
        for j in range(per_gamma):
            ref = rng.normal(m[j], sd[j], size=NUM_DRAWS)
            c2[str(g)].append(float(c2st(ref[:, None], draws[j][:, None], seed=j)))
        print(f"seed {seed}: gamma {g}: C2ST {np.round(c2[str(g)], 3)}", flush=True)

    y = ps.simulator.sample(per_gamma, seed=30, prior_power=1.0)["y"]
    t0 = time.perf_counter()
    res = bf.sensitivity.power_scaling_analysis(wf, ps, {"y": y}, seed=int(seeds[3]))
    analysis_s = time.perf_counter() - t0
    if report is not None:
        res.write_report(report / f"sensitivity_seed{seed}", history=wf.history)
    ybar = y.mean(axis=1)
    errors = {}
    for side in ("prior", "likelihood"):
        d_mean, d_log_sd = exact_derivatives(ybar, side)
        got = getattr(res, side)
        errors[side] = {
            "mean": float(np.max(np.abs(got["mean"][:, 0] - d_mean))),
            "log_sd": float(np.max(np.abs(got["log_sd"][:, 0] - d_log_sd))),
            "exact_log_sd": float(d_log_sd[0]),
        }
    return {
        "seed": seed,
        "simulate_s": simulate_s,
        "train_s": train_s,
        "epochs": len(history["loss"]),
        "c2st": c2,
        "derivative_errors": errors,
        "ratings": sorted(set(res.rating[:, 0].tolist())),
        "analysis_s": analysis_s,
    }


def write_md(out: dict, per_gamma: int) -> None:
    lines = [
        f"Machine: {out['machine']}. Command: `python benchmarks/sensitivity.py --write-md`.",
        "",
        f"Library defaults, `fit_offline` on {NUM_SIMULATIONS:,} simulations, one run per "
        f"seed; C2ST on {per_gamma} held-out datasets per power (the largest shown, target "
        f"<= {TARGET}); the analysis at gamma = 1 against the exact derivatives "
        "(d log sd / d log gamma: -0.222 for the prior, -0.278 for the likelihood).",
        "",
        "| seed | train (s) | epochs | C2ST max, gamma 0.5 / 1 / 2 | d log sd error, prior / "
        "likelihood | d mean error (sd), prior / likelihood | analysis (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out["runs"]:
        c = " / ".join(f"{max(r['c2st'][str(g)]):.3f}" for g in GAMMAS)
        e = r["derivative_errors"]
        lines.append(
            f"| {r['seed']} | {r['train_s']:.0f} | {r['epochs']} | {c} | "
            f"{e['prior']['log_sd']:.3f} / {e['likelihood']['log_sd']:.3f} | "
            f"{e['prior']['mean']:.3f} / {e['likelihood']['mean']:.3f} | "
            f"{r['analysis_s']:.1f} |"
        )
    replace_block("sensitivity", "\n".join(lines))


if __name__ == "__main__":
    main()
