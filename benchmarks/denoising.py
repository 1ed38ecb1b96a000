"""Bayesian image denoising (the seed's scenario; the guide's section 6.6.3 model): image
posteriors against the exact per-pixel answer.

Model: each pixel of an ``H x W x 1`` image is N(0, 1) a priori, and the observation adds
N(0, 0.3^2) noise, so the posterior of each pixel is N(y / 1.09, 0.09 / 1.09), pixels
independent. Trained online (fresh simulations each epoch) with the guide's network
(``DiffusionModel(subnet=UNet(), prediction_type="velocity", noise_schedule="cosine")``)
or another image network; reported for 20 held-out noisy images: the mean absolute error
of the per-pixel posterior means in posterior sd units, the ratio of the draws' sd to the
exact one, the coverage of the per-pixel central 90% intervals, and the training and
sampling time.

    python benchmarks/denoising.py                       # the guide's network
    python benchmarks/denoising.py --network flow_matching --subnet uvit --write-md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from sbibm_c2st import RESULTS, machine, replace_block  # noqa: E402

NOISE = 0.3
POST_SD = float(np.sqrt(NOISE**2 / (1 + NOISE**2)))


def network(name: str, subnet: str, epochs: int, steps_per_epoch: int):
    import amortized as bf

    backbone = {"unet": bf.networks.UNet(), "uvit": bf.networks.UViT()}[subnet]
    if name == "diffusion_model":
        return bf.networks.DiffusionModel(
            subnet=backbone, prediction_type="velocity", noise_schedule="cosine"
        )
    if name == "flow_matching":
        return bf.networks.FlowMatching(subnet=backbone)
    if name == "consistency_model":
        return bf.networks.ConsistencyModel(total_steps=epochs * steps_per_epoch, subnet=backbone)
    return bf.networks.StableConsistencyModel(subnet=backbone)


def run(args) -> dict:
    import amortized as bf

    size = args.size

    def prior():
        return dict(target_image=np.random.normal(size=(size, size, 1)).astype("float32"))

    def likelihood(target_image):
        noise = np.random.normal(0, NOISE, size=(size, size, 1)).astype("float32")
        return dict(condition_map=(target_image + noise).astype("float32"))

    adapter = (
        bf.Adapter()
        .rename("target_image", "inference_variables")
        .rename("condition_map", "inference_conditions")
    )
    wf = bf.BasicWorkflow(
        simulator=bf.make_simulator([prior, likelihood]),
        inference_network=network(args.network, args.subnet, args.epochs, args.batches),
        adapter=adapter,
        initial_learning_rate=args.learning_rate,
    )
    started = time.perf_counter()
    wf.fit_online(
        epochs=args.epochs,
        num_batches_per_epoch=args.batches,
        batch_size=args.batch_size,
        seed=0,
        progress=False,
    )
    train_s = time.perf_counter() - started
    obs = wf.simulate(20, seed=1)
    started = time.perf_counter()
    draws = wf.sample(conditions={"condition_map": obs["condition_map"]}, num_samples=500, seed=2)[
        "target_image"
    ]
    sample_s = time.perf_counter() - started
    mean = obs["condition_map"] / (1 + NOISE**2)
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=1)
    truth = obs["target_image"]
    return {
        "network": args.network,
        "subnet": args.subnet,
        "size": size,
        "steps": args.epochs * args.batches,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "mean_error_in_sd": float(np.mean(np.abs(draws.mean(1) - mean)) / POST_SD),
        "sd_ratio": float(np.mean(draws.std(1)) / POST_SD),
        "coverage_90": float(np.mean((truth >= lo) & (truth <= hi))),
        "train_seconds": train_s,
        "sample_seconds": sample_s,
        "machine": machine(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--network",
        default="diffusion_model",
        choices=[
            "diffusion_model",
            "flow_matching",
            "consistency_model",
            "stable_consistency_model",
        ],
    )
    p.add_argument("--subnet", default="unet", choices=["unet", "uvit"])
    p.add_argument("--size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--write-md", action="store_true")
    args = p.parse_args()
    result = run(args)
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "denoising.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    rows = [r for r in rows if (r["network"], r["subnet"]) != (args.network, args.subnet)]
    rows.append(result)
    path.write_text(json.dumps(rows, indent=1))
    if args.write_md:
        lines = [
            f"Machine: {result['machine']}. Command: `python benchmarks/denoising.py "
            f"--network NAME --subnet SUBNET` (8 x 8 images, online training).",
            "",
            "| network | subnet | steps x batch | lr | mean error (sd) | sd ratio | 90% coverage "
            "| train s | 20 x 500 draws s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['network']} | {r['subnet']} | {r['steps']} x {r['batch_size']} | "
                f"{r['learning_rate']:g} | {r['mean_error_in_sd']:.3f} | {r['sd_ratio']:.3f} | "
                f"{r['coverage_90']:.3f} | {r['train_seconds']:.0f} | "
                f"{r['sample_seconds']:.1f} |"
            )
        replace_block("denoising", "\n".join(lines))


if __name__ == "__main__":
    main()
