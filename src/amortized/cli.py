"""The ``amortized`` command.

- ``amortized demo``: train on a built-in model, diagnose on held-out simulations (and, for
  sbibm tasks, against the sbibm reference draws) and write the report folder;
- ``amortized diagnose MODEL.amz``: print the diagnostics table and ratings of a saved workflow;
- ``amortized report MODEL.amz``: write the report folder of a saved workflow.

A saved workflow does not contain its simulator; built-in models are found from the name the
demo stores with the model (or ``--model``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .simulators.benchmarks import SBIBM_HOW, TASKS, sbibm_root
from .simulators.benchmarks import SBIBM_TASKS as DEMO_MODELS


def _sbibm_c2st(wf, model: str, seed: int, sbibm: Path | None) -> float | None:
    import amortized as bf

    root = sbibm_root(sbibm)
    if root is None:
        print(f"C2ST against the sbibm reference skipped: {SBIBM_HOW} (--sbibm PATH)")
        return None
    ref_dir = root / model / "num_observation_1"
    if not ref_dir.is_dir():
        raise SystemExit(f"amortized: no sbibm reference for {model!r} at {ref_dir}; {SBIBM_HOW}")
    ref = np.loadtxt(ref_dir / "reference_posterior_samples.csv.bz2", delimiter=",", skiprows=1)
    obs = np.loadtxt(ref_dir / "observation.csv", delimiter=",", skiprows=1, ndmin=2)
    approx = wf.sample(conditions={"x": obs}, num_samples=len(ref), seed=seed)["theta"][0]
    return round(bf.diagnostics.c2st(ref, approx), 4)


def demo(
    model: str,
    out: Path,
    budget: int,
    epochs: int,
    seed: int,
    progress: bool,
    test_datasets: int = 300,
    sbibm: Path | None = None,
) -> dict:
    import amortized as bf
    from amortized._random import stream_seeds

    out.mkdir(parents=True, exist_ok=True)
    # one stream per stage, split from the demo's seed (never seed + i)
    seeds = stream_seeds(seed, ("simulate", "fit", "c2st", "report"))
    t0 = time.perf_counter()
    wf = bf.BasicWorkflow(
        simulator=bf.simulators.benchmarks.get_task(model),
        inference_network=bf.networks.CouplingFlow(transform="spline"),
        inference_variables="theta",
        inference_conditions="x",
    )
    print(f"simulating {budget} datasets of {model} ...", flush=True)
    train = wf.simulate(budget, seed=seeds["simulate"])
    print(
        f"training a spline CouplingFlow (early stopping, at most {epochs} epochs) ...", flush=True
    )
    wf.fit_offline(
        train,
        epochs=epochs,
        batch_size=128,
        validation_data=max(200, budget // 10),
        seed=seeds["fit"],
        progress=progress,
    )
    t_train = time.perf_counter() - t0
    wf.save(out / "model.amz", metadata={"model": model})
    config = {"model": model, "simulation budget": budget, "training seconds": round(t_train, 1)}
    c2st = _sbibm_c2st(wf, model, seeds["c2st"], sbibm)
    if c2st is not None:
        config["C2ST vs. sbibm reference, observation 1 (0.5 best)"] = c2st
    print(f"diagnosing on {test_datasets} held-out simulations ...", flush=True)
    wf.report(
        out,
        test_data=test_datasets,
        configuration=config,
        seed=seeds["report"],
        title=f"amortized demo: {model}",
    )
    rep = json.loads((out / "report.json").read_text())
    _print_summary(rep)
    print(f"report written to {out}/ (report.md, report.html, report.json, figures)")
    return rep


def _print_summary(rep: dict) -> None:
    for var, r in rep["ratings"].items():
        print(f"  {var}: {r['summary']}")
    print("next steps:")
    for i, s in enumerate(rep["next_steps"], 1):
        print(f"  {i}. {s}")


def _load(path: Path, model: str | None):
    import amortized as bf

    if not path.exists():
        raise SystemExit(f"amortized: no saved workflow at {path}")
    wf = bf.load(path)
    name = model or wf.metadata.get("model")
    if name is None:
        raise SystemExit(
            f"amortized: {path} does not name its simulator; pass --model (one of {sorted(TASKS)})"
        )
    if name not in TASKS:
        raise SystemExit(f"amortized: unknown --model {name!r}; choose from {sorted(TASKS)}")
    wf.simulator = bf.simulators.benchmarks.get_task(name)
    return wf, name


def diagnose_cmd(args) -> int:
    wf, _ = _load(args.path, args.model)
    table = wf.compute_default_diagnostics(
        args.test_datasets, num_samples=args.num_samples, seed=args.seed
    )
    from .diagnostics import rate_diagnostics

    ratings = rate_diagnostics(table)
    if args.json:
        print(
            json.dumps(
                {
                    "metrics": json.loads(table.to_json()),
                    "ratings": {r.variable: r.summary for r in ratings},
                },
                indent=1,
            )
        )
    else:
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))
        for r in ratings:
            print(f"{r.variable}: {r.summary}")
    return 0


def report_cmd(args) -> int:
    wf, name = _load(args.path, args.model)
    out = args.out or args.path.with_suffix("").with_name(args.path.stem + "-report")
    wf.report(
        out,
        test_data=args.test_datasets,
        num_samples=args.num_samples,
        seed=args.seed,
        configuration={"model": name, "saved workflow": str(args.path)},
    )
    _print_summary(json.loads((out / "report.json").read_text()))
    print(f"report written to {out}/")
    return 0


def _positive(text: str) -> int:
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {v}")
    return v


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amortized", description="Amortized Bayesian inference.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train on a built-in model, diagnose, write a report folder")
    p.add_argument("--model", default="two_moons", choices=DEMO_MODELS)
    p.add_argument("--out", default="amortized-demo", type=Path, help="report folder")
    p.add_argument("--budget", default=10_000, type=_positive, help="number of simulations")
    p.add_argument("--epochs", default=60, type=_positive, help="cap on epochs (early stopping)")
    p.add_argument(
        "--test-datasets",
        default=300,
        type=_positive,
        help="held-out simulations for the diagnostics",
    )
    p.add_argument("--seed", default=0, type=int)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--sbibm",
        default=None,
        type=Path,
        help="folder of sbibm reference posteriors, for the C2ST of the demo's model "
        "(default: the AMORTIZED_SBIBM environment variable; without either, no C2ST)",
    )
    p.add_argument(
        "--cpu-devices",
        default=None,
        type=_positive,
        help="JAX devices to split the CPU into for data-parallel training "
        "(default: what import amortized chose, one per core unless AMORTIZED_CPU_DEVICES "
        "says otherwise; see amortized.set_cpu_devices)",
    )
    for name, text in (
        ("diagnose", "print the diagnostics of a saved workflow"),
        ("report", "write the report folder of a saved workflow"),
    ):
        q = sub.add_parser(name, help=text)
        q.add_argument("path", type=Path, help="saved workflow (.amz)")
        q.add_argument(
            "--model",
            default=None,
            help="built-in simulator (default: the one stored with the model)",
        )
        q.add_argument("--test-datasets", default=300, type=_positive)
        q.add_argument("--num-samples", default=1000, type=_positive)
        q.add_argument("--seed", default=0, type=int)
        if name == "diagnose":
            q.add_argument("--json", action="store_true", help="machine-readable output")
        else:
            q.add_argument(
                "--out",
                default=None,
                type=Path,
                help="report folder (default: <model>-report beside the file)",
            )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .training import parallel

        try:  # a wrong reference folder is reported before minutes of training, not after
            sbibm_root(args.sbibm)
        except FileNotFoundError as err:
            raise SystemExit(f"amortized: {err}") from None

        # `import amortized` split the CPU already (unless AMORTIZED_CPU_DEVICES opted out);
        # an explicit count replaces that (main() may run where JAX already ran)
        if args.cpu_devices is not None and not parallel.jax_started():
            parallel.set_cpu_devices(args.cpu_devices)
        demo(
            args.model,
            args.out,
            args.budget,
            args.epochs,
            args.seed,
            not args.no_progress,
            args.test_datasets,
            args.sbibm,
        )
        return 0
    return {"diagnose": diagnose_cmd, "report": report_cmd}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
