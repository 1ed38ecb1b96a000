"""Issue 21 benchmark: neural ratio estimation on sbibm two_moons at 10^4 simulations.

``bf.approximators.RatioApproximator`` with its defaults (contrastive NRE, gamma = 1,
K = 5, classifier MLP (256, 256)), trained by ``fit`` on 10^4 simulations (5% held out for
early stopping, batch 64); the posterior of each of the 10 sbibm observations by
``bf.workflow.mcmc_posterior`` on log prior + log ratio (NUTS in the logit space of the
uniform prior box, chains started from likelihood-weighted prior draws), 10,000 draws,
scored by C2ST against the sbibm reference draws. Target (issue 21): mean C2ST <= 0.62
(sbibm's NRE: 0.60-0.65 at 10^4; NPE 0.606).

    python benchmarks/ratio_two_moons.py [--num-chains 20] [--write-md]
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
from sbibm_c2st import RESULTS, load_reference, machine, replace_block  # noqa: E402


def run(args) -> dict:
    import jax.numpy as jnp

    import amortized as bf
    from amortized.diagnostics import c2st

    sim = bf.simulators.benchmarks.two_moons()
    approx = bf.approximators.RatioApproximator(adapter=bf.Adapter.create_default("theta", "x"))
    data = sim.sample(args.num_sims, seed=args.seed)
    t0 = time.perf_counter()
    hist = approx.fit(
        dataset=data, epochs=1000, batch_size=64, patience=10, seed=args.seed, progress=False
    )
    fit_s = time.perf_counter() - t0
    model = approx.model(
        sim,
        log_prior=lambda p: jnp.float32(-np.log(4.0)),
        parameters=["theta"],
        observed="x",
        supports={"theta": (-1.0, 1.0)},
    )
    scores, mcmc_s, rhat = [], [], []
    for k in range(1, 11):
        obs, ref = load_reference("two_moons", k)
        t0 = time.perf_counter()
        post = bf.workflow.mcmc_posterior(
            model, {"x": obs.astype(np.float32)}, num_samples=len(ref),
            num_chains=args.num_chains, seed=args.seed + k,
        )  # fmt: skip
        mcmc_s.append(time.perf_counter() - t0)
        rhat.append(float(np.max(post.rhat)))
        scores.append(round(float(c2st(ref, post.draws["theta"][0], seed=k)), 3))
        print(f"observation {k}: C2ST {scores[-1]}, {mcmc_s[-1]:.0f} s", flush=True)
    return {
        "num_sims": args.num_sims,
        "epochs": len(hist["loss"]),
        "fit_s": round(fit_s, 1),
        "c2st": scores,
        "mean_c2st": float(np.mean(scores)),
        "mcmc_s_mean": round(float(np.mean(mcmc_s)), 1),
        "num_chains": args.num_chains,
        "max_rhat": rhat,
        "machine": machine(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-sims", type=int, default=10_000)
    p.add_argument("--num-chains", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-md", action="store_true")
    args = p.parse_args()
    res = run(args)
    print(json.dumps(res, indent=1))
    (RESULTS / "ratio_two_moons.json").write_text(json.dumps(res, indent=1))
    if args.write_md:
        r = res
        table = "\n".join(
            [
                "| task | simulations | C2ST per observation | mean | target | training "
                "| MCMC per observation |",
                "|---|---|---|---|---|---|---|",
                f"| two_moons | {r['num_sims']:,} | {', '.join(f'{c:.3f}' for c in r['c2st'])} "
                f"| {r['mean_c2st']:.3f} | 0.62 | {r['fit_s']:.0f} s ({r['epochs']} epochs) "
                f"| {r['mcmc_s_mean']:.0f} s ({r['num_chains']} NUTS chains) |",
                "",
                f"Machine: {r['machine']}.",
            ]
        )
        replace_block("ratio-two-moons", table)


if __name__ == "__main__":
    main()
