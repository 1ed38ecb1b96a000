"""Issue 21 benchmark: neural likelihood estimation, one network for any number of i.i.d.
observations, against the exact normal-inverse-gamma posterior.

Model: sigma^2 ~ InvGamma(3, 2), mu | sigma ~ N(0, sigma^2), y_1..N ~ N(mu, sigma^2).
A ``BasicWorkflow`` with the library's default inference network learns q(y | mu, sigma)
from 2 x 10^4 single observations (``inference_variables="y"``,
``inference_conditions=["mu", "sigma"]``, ``fit_offline`` with its defaults). Then for
held-out datasets of N = 10 and N = 100 observations, ``bf.workflow.mcmc_posterior`` runs
NUTS (4 chains) on log p(mu, sigma) + sum_i log q(y_i | mu, sigma), and the draws are
scored by C2ST (sbibm protocol, ``--num-draws`` each) against exact posterior draws.

    python benchmarks/neural_likelihood.py [--per-size 3] [--write-md]
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
from normal_inverse_gamma import A0, B0, K0, exact_posterior  # noqa: E402
from sbibm_c2st import RESULTS, machine, replace_block  # noqa: E402


def prior():
    sigma2 = B0 / np.random.gamma(A0)
    return {"mu": np.random.normal(0.0, np.sqrt(sigma2 / K0), size=1), "sigma": np.sqrt([sigma2])}


def log_prior(p):
    """log p(mu, sigma): InvGamma(sigma^2; A0, B0) |d sigma^2 / d sigma| N(mu; 0, sigma^2 / K0)."""
    import jax.numpy as jnp
    from jax.scipy.special import gammaln

    mu, sigma = p["mu"][0], p["sigma"][0]
    s2 = sigma**2
    log_ig = A0 * jnp.log(B0) - gammaln(A0) - (A0 + 1) * jnp.log(s2) - B0 / s2
    log_n = -0.5 * jnp.log(2 * jnp.pi * s2 / K0) - 0.5 * K0 * mu**2 / s2
    return log_ig + jnp.log(2 * sigma) + log_n


def run(args) -> dict:
    import amortized as bf
    from amortized.diagnostics import c2st

    one = bf.make_simulator([prior, lambda mu, sigma: {"y": mu + sigma * np.random.normal(size=1)}])
    wf = bf.BasicWorkflow(
        simulator=one,
        inference_variables="y",
        inference_conditions=["mu", "sigma"],
        regression_adjustment=args.regression_adjustment or None,
    )
    t0 = time.perf_counter()
    hist = wf.fit_offline(one.sample(args.num_sims, seed=args.seed), seed=args.seed, progress=False)
    fit_s = time.perf_counter() - t0
    nle = bf.approximators.NeuralLikelihood(wf, parameters=["mu", "sigma"], observed="y")
    out = {
        "num_sims": args.num_sims,
        "fit_s": round(fit_s, 1),
        "epochs": len(hist["loss"]),
        "network": type(wf.inference_network).__name__
        + (" with the regression adjustment" if args.regression_adjustment else ""),
        "machine": machine(),
        "c2st": {},
        "mcmc_s": {},
        "max_rhat": {},
    }
    rng = np.random.default_rng(args.seed + 7)
    for n_obs in (10, 100):

        def likelihood(mu, sigma, n=n_obs):
            return {"y": mu + sigma * np.random.normal(size=(n, 1))}

        full = bf.make_simulator([prior, likelihood])
        model = nle.model(full, log_prior, supports={"sigma": (0.0, None)})
        data = full.sample(args.per_size, seed=args.seed + n_obs)
        t0 = time.perf_counter()
        post = bf.workflow.mcmc_posterior(
            model, {"y": data["y"]}, num_samples=args.num_draws, seed=args.seed + n_obs
        )
        out["mcmc_s"][n_obs] = round(time.perf_counter() - t0, 1)
        out["max_rhat"][n_obs] = float(np.max(post.rhat))
        scores = []
        for i in range(args.per_size):
            ref = exact_posterior(data["y"][i, :, 0], args.num_draws, rng)
            est = np.concatenate([post.draws["mu"][i], post.draws["sigma"][i]], axis=1)
            scores.append(round(float(c2st(ref, est, seed=i)), 3))
        out["c2st"][n_obs] = scores
        print(f"N={n_obs}: C2ST {scores}, MCMC {out['mcmc_s'][n_obs]} s", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-sims", type=int, default=20_000)
    p.add_argument("--per-size", type=int, default=3)
    p.add_argument("--num-draws", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--regression-adjustment",
        action="store_true",
        help="regress y linearly on (mu, sigma) before training (off by default)",
    )
    p.add_argument("--write-md", action="store_true")
    args = p.parse_args()
    res = run(args)
    print(json.dumps(res, indent=1))
    tag = ("" if args.num_sims == 20_000 else f"_{args.num_sims}") + (
        "_regression_adjustment" if args.regression_adjustment else ""
    )
    (RESULTS / f"neural_likelihood{tag}.json").write_text(json.dumps(res, indent=1))
    if args.write_md:
        write_md()


def write_md() -> None:
    """One row per budget and dataset size, from every results file of this benchmark."""
    rows, notes = [], []
    for f in sorted(RESULTS.glob("neural_likelihood*.json")):
        r = json.loads(f.read_text())
        for n, scores in r["c2st"].items():
            rows.append(
                f"| {r['num_sims']:,}{' (adjusted)' if 'regression' in r['network'] else ''} "
                f"| N = {n} | {', '.join(f'{c:.3f}' for c in scores)} "
                f"| {np.mean(scores):.3f} | 0.56 | {r['mcmc_s'][n]:.0f} s "
                f"(R-hat <= {r['max_rhat'][n]:.3f}) |"
            )
        notes.append(
            f"{r['num_sims']:,} single observations: {r['network']} trained in "
            f"{r['fit_s']:.0f} s ({r['epochs']} epochs)"
        )
    table = "\n".join(
        [
            "| single observations | dataset size | C2ST per dataset | mean | target "
            "| NUTS, all datasets |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "; ".join(notes) + f". Machine: {machine()}.",
        ]
    )
    replace_block("neural-likelihood", table)


if __name__ == "__main__":
    main()
