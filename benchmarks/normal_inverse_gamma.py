"""Issue 4 benchmark: sets of varying size, against the analytic posterior.

Model: sigma^2 ~ InvGamma(a0=3, b0=2), mu | sigma ~ N(0, sigma^2 / k0) with k0 = 1,
N ~ U{5..100} (meta_fn), x_1..x_N ~ N(mu, sigma^2) exchangeable. Conjugate posterior:
k_N = k0 + N, m_N = N xbar / k_N, a_N = a0 + N/2,
b_N = b0 + S/2 + k0 N xbar^2 / (2 k_N) (S: sum of squared deviations);
sigma^2 | x ~ InvGamma(a_N, b_N), mu | sigma, x ~ N(m_N, sigma^2 / k_N).

Two trainings of a SetTransformer + CouplingFlow (sqrt(N) also a direct condition):
(a) online, a fresh N per batch of simulations, 3,000 steps; (b) offline on 2 x 10^4
datasets of mixed N (``--offline-epochs``, default 15, about 4,700 steps) from
``Simulator.sample_ragged``, padded with masks. Each is scored by
C2ST (sbibm protocol) of 10,000 draws against 10,000 exact posterior draws on held-out
datasets with N = 5, 20 and 100 (``--per-size`` datasets each).

    python benchmarks/normal_inverse_gamma.py [--per-size 5] [--write-md]
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

A0, B0, K0 = 3.0, 2.0, 1.0


def simulator():
    import amortized as bf

    def prior():
        sigma2 = B0 / np.random.gamma(A0)
        return {
            "mu": np.random.normal(0.0, np.sqrt(sigma2 / K0), size=1),
            "sigma": np.sqrt([sigma2]),
        }

    def likelihood(mu, sigma, N):
        return {"x": mu + sigma * np.random.normal(size=(N, 1))}

    return bf.make_simulator([prior, likelihood], meta_fn=lambda: {"N": np.random.randint(5, 101)})


def exact_posterior(x: np.ndarray, num: int, rng) -> np.ndarray:
    n = len(x)
    xbar = x.mean()
    s = np.sum((x - xbar) ** 2)
    kn, an = K0 + n, A0 + n / 2
    mn = n * xbar / kn
    bn = B0 + s / 2 + K0 * n * xbar**2 / (2 * kn)
    sigma2 = bn / rng.gamma(an, size=num)
    mu = rng.normal(mn, np.sqrt(sigma2 / kn))
    return np.stack([mu, np.sqrt(sigma2)], axis=1)


def workflow():
    import amortized as bf

    adapter = (
        bf.Adapter()
        .convert_dtype()
        .sqrt("N")
        .constrain("sigma", lower=0.0)
        .concatenate(["mu", "sigma"], into="inference_variables")
        .rename("N", "inference_conditions")
        .rename("x", "summary_variables")
        .rename("mask", "summary_mask")
    )
    return bf.BasicWorkflow(
        simulator=simulator(),
        adapter=adapter,
        inference_network=bf.networks.CouplingFlow(),
        summary_network=bf.networks.SetTransformer(summary_dim=8),
    )


def score(wf, per_size: int, seed: int) -> dict:
    from amortized.diagnostics import c2st

    rng = np.random.default_rng(seed)
    out = {}
    for n in (5, 20, 100):
        test = wf.simulator.sample(per_size, seed=seed + n, N=n)
        draws = wf.sample(
            conditions={"x": test["x"], "N": np.full((per_size, 1), n)},
            num_samples=10_000,
            seed=seed + 1,
        )
        approx = np.concatenate([draws["mu"], draws["sigma"]], axis=-1)
        out[n] = [
            c2st(exact_posterior(test["x"][j, :, 0], 10_000, rng), approx[j])
            for j in range(per_size)
        ]
        print(f"  N = {n}: C2ST {np.round(out[n], 3).tolist()}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--per-size", type=int, default=5)
    p.add_argument("--write-md", action="store_true")
    p.add_argument("--only", choices=["online", "offline"], default=None)
    p.add_argument("--offline-epochs", type=int, default=15)
    a = p.parse_args()
    out_file = RESULTS / "normal_inverse_gamma.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    if a.only != "offline":
        wf = workflow()
        t = time.perf_counter()
        wf.fit_online(
            epochs=30,
            num_batches_per_epoch=100,
            batch_size=64,
            validation_data=1000,
            seed=1,
            progress=False,
        )
        secs = time.perf_counter() - t
        print(f"online: 3000 steps in {secs:.0f} s", flush=True)
        results["online"] = {
            "c2st": score(wf, a.per_size, 100),
            "train_seconds": secs,
            "steps": 3000,
            "batch_size": 64,
            "machine": machine(),
        }
        out_file.write_text(json.dumps(results, indent=1))
    if a.only != "online":
        wf = workflow()
        data = wf.simulator.sample_ragged(20_000, chunk_size=64, seed=2)
        val = wf.simulator.sample_ragged(1_000, chunk_size=64, seed=3, pad_to=data["x"].shape[1])
        t = time.perf_counter()
        wf.fit_offline(
            data,
            epochs=40,
            batch_size=64,
            validation_data=val,
            seed=4,
            restore_best=True,
            progress=False,
        )
        secs = time.perf_counter() - t
        print(f"offline: 2x10^4 datasets, {a.offline_epochs} epochs in {secs:.0f} s", flush=True)
        results["offline"] = {
            "c2st": score(wf, a.per_size, 100),
            "train_seconds": secs,
            "epochs": 40,
            "batch_size": 64,
            "machine": machine(),
        }
        out_file.write_text(json.dumps(results, indent=1))
    if a.write_md:
        write_markdown(results)


def write_markdown(results: dict) -> None:
    lines = [
        "| training | C2ST N=5 | N=20 | N=100 | mean | target | train (s) | machine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in (
        ("online", "online, fresh N per batch, 3,000 steps"),
        ("offline", "offline, 2x10^4 mixed-N datasets padded with masks"),
    ):
        if name not in results:
            continue
        r = results[name]
        means = [
            np.mean(r["c2st"][str(n)] if str(n) in r["c2st"] else r["c2st"][n])
            for n in (5, 20, 100)
        ]
        lines.append(
            f"| {label} | {means[0]:.3f} | {means[1]:.3f} | {means[2]:.3f} | "
            f"{np.mean(means):.3f} | 0.55 | {r['train_seconds']:.0f} | {r['machine']} |"
        )
    replace_block("nig", "\n".join(lines))


if __name__ == "__main__":
    main()
