"""The ``amortized`` command.

``amortized demo`` trains on a built-in model, checks the posterior on held-out simulations
and (for sbibm tasks) against the sbibm reference draws, and writes a report folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .simulators.benchmarks import SBIBM_TASKS as DEMO_MODELS


def _find_reference(model: str, observation: int = 1) -> Path | None:
    """The sbibm reference folder for ``model``, looked up beside the working directory."""
    for root in (Path.cwd(), *Path.cwd().parents):
        cand = root / "shared" / "benchmarks" / "sbibm" / model / f"num_observation_{observation}"
        if cand.exists():
            return cand
    return None


def _loss_figure(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="training")
    if history.get("val_loss"):
        ax.plot(epochs, history["val_loss"], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (negative log-likelihood)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def demo(model: str, out: Path, budget: int, epochs: int, seed: int, progress: bool) -> dict:
    import amortized as bf

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    wf = bf.BasicWorkflow(
        simulator=bf.simulators.benchmarks.get_task(model),
        inference_network=bf.networks.CouplingFlow(transform="spline"),
        inference_variables="theta",
        inference_conditions="x",
    )
    print(f"simulating {budget} datasets of {model} ...", flush=True)
    train = wf.simulate(budget, seed=seed)
    history = wf.fit_offline(
        train,
        epochs=epochs,
        batch_size=128,
        validation_data=max(200, budget // 10),
        seed=seed + 1,
        progress=progress,
    )
    t_train = time.perf_counter() - t0
    wf.save(out / "model.amz")

    # held-out check: posterior z-scores and central 90% interval coverage
    test = wf.simulate(300, seed=seed + 2)
    t1 = time.perf_counter()
    draws = wf.sample(conditions={"x": test["x"]}, num_samples=500, seed=seed + 3)["theta"]
    t_sample = time.perf_counter() - t1
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=1)
    coverage = np.mean((test["theta"] >= lo) & (test["theta"] <= hi), axis=0)
    prior_sd = train["theta"].std(axis=0)
    post_sd = draws.std(axis=1)
    contraction = 1.0 - np.mean(post_sd**2, axis=0) / prior_sd**2
    nrmse = np.sqrt(np.mean((np.median(draws, axis=1) - test["theta"]) ** 2, axis=0)) / (
        train["theta"].max(axis=0) - train["theta"].min(axis=0)
    )

    result = {
        "model": model,
        "budget": budget,
        "epochs": epochs,
        "seed": seed,
        "train_seconds": round(t_train, 2),
        "sample_seconds_300x500": round(t_sample, 3),
        "coverage_90": coverage.round(3).tolist(),
        "contraction": contraction.round(3).tolist(),
        "nrmse": nrmse.round(3).tolist(),
        "final_loss": history["loss"][-1],
        "final_val_loss": history["val_loss"][-1],
    }
    ref_dir = _find_reference(model)
    if ref_dir is not None:
        ref = np.loadtxt(ref_dir / "reference_posterior_samples.csv.bz2", delimiter=",", skiprows=1)
        obs = np.loadtxt(ref_dir / "observation.csv", delimiter=",", skiprows=1, ndmin=2)
        approx = wf.sample(conditions={"x": obs}, num_samples=len(ref), seed=seed + 4)["theta"][0]
        result["c2st_observation_1"] = round(bf.diagnostics.c2st(ref, approx), 4)
    (out / "history.json").write_text(json.dumps(history, indent=1))
    (out / "summary.json").write_text(json.dumps(result, indent=1))
    _loss_figure(history, out / "loss.png")
    lines = [
        f"# amortized demo: {model}",
        "",
        f"Trained a spline CouplingFlow on {budget} simulations for {epochs} epochs "
        f"in {t_train:.1f} s.",
        "",
        "![loss](loss.png)",
        "",
        "| parameter | 90% coverage | contraction | NRMSE |",
        "|---|---|---|---|",
    ]
    for i, (c, k, e) in enumerate(zip(coverage, contraction, nrmse, strict=True)):
        lines.append(f"| theta[{i}] | {c:.3f} | {k:.3f} | {e:.3f} |")
    if "c2st_observation_1" in result:
        lines += [
            "",
            f"C2ST against the sbibm reference posterior (observation 1): "
            f"{result['c2st_observation_1']:.3f} (0.5 is perfect).",
        ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(result, indent=1))
    print(f"report written to {out}/")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amortized", description="Amortized Bayesian inference.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train on a built-in model and write a report folder")
    p.add_argument("--model", default="two_moons", choices=DEMO_MODELS)
    p.add_argument("--out", default="amortized-demo", type=Path)
    p.add_argument("--budget", default=10_000, type=int, help="number of simulations")
    p.add_argument("--epochs", default=60, type=int)
    p.add_argument("--seed", default=0, type=int)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.budget <= 0 or args.epochs <= 0:
            parser.error("--budget and --epochs must be positive")
        demo(args.model, args.out, args.budget, args.epochs, args.seed, not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
