"""Issue 4 benchmark: AR(2) series of varying length against a NUTS reference.

Model: partial autocorrelations r1, r2 ~ U(-1, 1) (a uniform prior over stationary AR(2)
processes), phi1 = r1 (1 - r2), phi2 = r2, sigma ~ HalfNormal(1);
y_t = phi1 y_{t-1} + phi2 y_{t-2} + sigma e_t from y_{-1} = y_0 = 0, T ~ U{50..200}.
Training: the partial autocorrelations r (constrained to the prior's box (-1, 1)) and sigma
are inferred (``--parametrization phi``: phi unconstrained, as in earlier runs), with a
TimeSeriesNetwork (or, ``--network time_series_transformer``, a
TimeSeriesTransformer) + CouplingFlow online with a fresh T per batch of
simulations (padded with masks). Reference: NumPyro NUTS on the same model (4 chains x
2,500 draws after 1,000 warm-up). Score: C2ST (sbibm protocol) on (phi1, phi2, sigma) for
``--series`` held-out series.

    python benchmarks/ar2.py [--series 5] [--network time_series_network] [--epochs 30]
        [--batch-size 64] [--parametrization r] [--tag _long] [--write-md]
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


def simulate_series(phi1, phi2, sigma, T, rng):
    """y_t = phi1 y_{t-1} + phi2 y_{t-2} + sigma e_t from zeros: the all-pole filter
    1 / (1 - phi1 z^-1 - phi2 z^-2) applied to the innovations (no Python loop over t)."""
    from scipy.signal import lfilter

    return lfilter([1.0], [1.0, -phi1, -phi2], rng.normal(size=T) * sigma)


def phi_of(r: np.ndarray) -> np.ndarray:
    """AR coefficients ``(..., 2)`` from partial autocorrelations ``r (..., 2)``."""
    return np.stack([r[..., 0] * (1 - r[..., 1]), r[..., 1]], axis=-1)


def simulator():
    import amortized as bf

    def prior():
        r = np.random.uniform(-1, 1, size=2)
        return {"r": r, "phi": phi_of(r), "sigma": np.abs(np.random.normal(size=1))}

    def likelihood(phi, sigma, T):
        rng = np.random.default_rng(np.random.randint(2**31))
        return {"y": simulate_series(phi[0], phi[1], sigma[0], T, rng)[:, None]}

    return bf.make_simulator([prior, likelihood], meta_fn=lambda: {"T": np.random.randint(50, 201)})


def nuts_reference(y: np.ndarray, seed: int) -> np.ndarray:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    def model(y):
        r1 = numpyro.sample("r1", dist.Uniform(-1.0, 1.0))
        r2 = numpyro.sample("r2", dist.Uniform(-1.0, 1.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        phi1, phi2 = r1 * (1 - r2), r2
        prev = jnp.concatenate([jnp.zeros(1), y[:-1]])
        prev2 = jnp.concatenate([jnp.zeros(2), y[:-2]])
        numpyro.sample("y", dist.Normal(phi1 * prev + phi2 * prev2, sigma), obs=y)

    mcmc = MCMC(
        NUTS(model),
        num_warmup=1000,
        num_samples=2500,
        num_chains=4,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(seed), y=jnp.asarray(y))
    s = mcmc.get_samples()
    r1, r2 = np.asarray(s["r1"]), np.asarray(s["r2"])
    return np.stack([r1 * (1 - r2), r2, np.asarray(s["sigma"])], axis=1)


def main() -> None:
    import amortized as bf
    from amortized.diagnostics import c2st

    p = argparse.ArgumentParser()
    p.add_argument("--series", type=int, default=5)
    p.add_argument("--epochs", type=int, default=30, help="of 100 steps each")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--network",
        choices=["time_series_network", "time_series_transformer"],
        default="time_series_network",
    )
    p.add_argument(
        "--parametrization",
        choices=["r", "phi"],
        default="r",
        help="infer the partial autocorrelations r in (-1, 1) (the prior's box, declared with "
        "Adapter.constrain) or the AR coefficients phi unconstrained; C2ST is on phi either way",
    )
    p.add_argument(
        "--constrain-method",
        default="default",
        choices=["default", "sigmoid", "probit"],
        help="Adapter.constrain's map of r's interval (-1, 1) to the real line",
    )
    p.add_argument("--write-md", action="store_true")
    p.add_argument("--tag", default="", help="suffix of the results file and BENCHMARKS.md block")
    a = p.parse_args()
    drop = "phi" if a.parametrization == "r" else "r"
    summary = {
        "time_series_network": bf.networks.TimeSeriesNetwork,
        "time_series_transformer": bf.networks.TimeSeriesTransformer,
    }[a.network](summary_dim=16)
    adapter = bf.Adapter().convert_dtype().drop(drop).constrain("sigma", lower=0.0)
    if a.parametrization == "r":
        adapter = adapter.constrain("r", lower=-1.0, upper=1.0, method=a.constrain_method)
    adapter = (
        adapter.concatenate([a.parametrization, "sigma"], into="inference_variables")
        .rename("y", "summary_variables")
        .rename("mask", "summary_mask")
        .drop("T")
    )
    wf = bf.BasicWorkflow(
        simulator=simulator(),
        adapter=adapter,
        inference_network=bf.networks.CouplingFlow(),
        summary_network=summary,
    )
    t = time.perf_counter()
    wf.fit_online(
        epochs=a.epochs,
        num_batches_per_epoch=100,
        batch_size=a.batch_size,
        validation_data=1000,
        seed=1,
        progress=False,
    )
    train_s = time.perf_counter() - t
    print(f"trained {a.epochs * 100} steps in {train_s:.0f} s", flush=True)
    test = wf.simulator.sample_ragged(a.series, chunk_size=1, seed=7)
    scores, lengths = [], []
    for j in range(a.series):
        T = int(test["T"][j, 0])
        y = test["y"][j, :T, 0]
        draws = wf.sample(conditions={"y": y[None, :, None]}, num_samples=10_000, seed=j)
        phi = phi_of(draws["r"][0]) if a.parametrization == "r" else draws["phi"][0]
        approx = np.concatenate([phi, draws["sigma"][0]], axis=1)
        ref = nuts_reference(y, seed=j)
        scores.append(c2st(ref, approx))
        lengths.append(T)
        print(f"  series {j} (T = {T}): C2ST {scores[-1]:.3f}", flush=True)
    res = {
        "c2st": scores,
        "lengths": lengths,
        "c2st_mean": float(np.mean(scores)),
        "train_seconds": train_s,
        "steps": a.epochs * 100,
        "network": a.network,
        "parametrization": a.parametrization,
        "batch_size": a.batch_size,
        "constrain_method": a.constrain_method,
        "machine": machine(),
    }
    RESULTS.mkdir(exist_ok=True)
    name = f"ar2_{a.network}" + ("_r" if a.parametrization == "r" else "") + a.tag
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=1))
    if a.write_md:
        replace_block(
            name,
            "\n".join(
                [
                    "| summary network | series (T) | C2ST per series | mean | target | train (s) "
                    "| machine |",
                    "|---|---|---|---|---|---|---|",
                    f"| {a.network} ({a.parametrization}) | {a.series} "
                    f"({', '.join(map(str, lengths))}) | "
                    f"{', '.join(f'{s:.3f}' for s in scores)} | {res['c2st_mean']:.3f} | 0.60 | "
                    f"{train_s:.0f} ({res['steps']} steps) | {res['machine']} |",
                ]
            ),
        )


if __name__ == "__main__":
    main()
