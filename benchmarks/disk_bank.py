"""Issue 22 benchmark: training from a bank of 10^5 simulation files against memory.

A 10-dimensional model (theta ~ N(0, I), x = theta + N(0, 0.5^2 I)) simulated 10^5 times,
written as 10^5 pickle files (one simulation each, BayesFlow's convention). The same
`BasicWorkflow` (default CouplingFlow) is trained on the same simulations by
`fit_offline` (in memory), by `fit_disk` (the folder) and by `fit_disk` on a zarr store
written by `simulator.sample_to_disk` (the chunked draws of the same seed: other
simulations of the same model), with the same fixed number of
epochs, batch size and validation set, each in its own process so that its peak resident
memory is its own. Reported: the held-out loss after the last epoch, the mean epoch time
after the first (compilation) and the peak resident memory.

    python benchmarks/disk_bank.py [--num 100000] [--epochs 4] [--write-md]
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sbibm_c2st import RESULTS, machine, replace_block  # noqa: E402

DIM = 10


def workflow():
    import amortized as bf

    def prior():
        return {"theta": np.random.normal(size=DIM)}

    def likelihood(theta):
        return {"x": theta + 0.5 * np.random.normal(size=DIM)}

    return bf.BasicWorkflow(
        simulator=bf.make_simulator([prior, likelihood]),
        adapter=bf.Adapter.create_default("theta", "x"),
        inference_network=bf.networks.CouplingFlow(),
    )


def write_bank(root: Path, num: int) -> float:
    wf = workflow()
    data = wf.simulate(num, seed=0)
    t = time.perf_counter()
    root.mkdir(parents=True)
    for i in range(num):
        with open(root / f"sim_{i:06d}.pkl", "wb") as fh:
            pickle.dump({k: v[i] for k, v in data.items()}, fh)
    return time.perf_counter() - t


def train(mode: str, root: Path, num: int, epochs: int, batch_size: int) -> dict:
    wf = workflow()
    val = wf.simulate(2000, seed=1)
    common = dict(
        epochs=epochs, batch_size=batch_size, validation_data=val, seed=2, progress=False,
        early_stopping=False,
    )  # fmt: skip
    if mode == "memory":
        hist = wf.fit_offline(wf.simulate(num, seed=0), **common)
    elif mode == "zarr":
        hist = wf.fit_disk(root.parent / "bank.zarr", **common)
    else:
        hist = wf.fit_disk(root, **common)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        "val_loss": hist["val_loss"][-1],
        "epoch_seconds": float(np.mean(hist["epoch_seconds"][1:])),
        "first_epoch_seconds": hist["epoch_seconds"][0],
        "peak_rss_mib": rss_mib,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--write-md", action="store_true")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        res = train(args.child, Path(args.root), args.num, args.epochs, args.batch_size)
        print("RESULT " + json.dumps(res), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bank"
        out = {"num": args.num, "epochs": args.epochs, "batch_size": args.batch_size}
        out["write_seconds"] = write_bank(root, args.num)
        t = time.perf_counter()
        workflow().simulator.sample_to_disk(root.parent / "bank.zarr", args.num, seed=0)
        out["zarr_write_seconds"] = time.perf_counter() - t
        for mode in ("memory", "disk", "zarr"):
            cmd = [sys.executable, __file__, "--child", mode, "--root", str(root),
                   "--num", str(args.num), "--epochs", str(args.epochs),
                   "--batch-size", str(args.batch_size)]  # fmt: skip
            run = subprocess.run(cmd, capture_output=True, text=True, check=True)
            line = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")][-1]
            out[mode] = json.loads(line[7:])
    out["epoch_time_ratio"] = out["disk"]["epoch_seconds"] / out["memory"]["epoch_seconds"]
    out["zarr_epoch_time_ratio"] = out["zarr"]["epoch_seconds"] / out["memory"]["epoch_seconds"]
    out["machine"] = machine()
    print(json.dumps(out, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "disk_bank.json").write_text(json.dumps(out, indent=1))
    if args.write_md:
        m, d, z = out["memory"], out["disk"], out["zarr"]
        rows = [
            "| training | held-out loss (last epoch) | s / epoch | first epoch (s) "
            "| peak memory (MiB) |",
            "|---|---|---|---|---|",
            *(
                f"| {name} | {r['val_loss']:.3f} | {r['epoch_seconds']:.2f} | "
                f"{r['first_epoch_seconds']:.1f} | {r['peak_rss_mib']:.0f} |"
                for name, r in (
                    ("fit_offline (in memory)", m),
                    (f"fit_disk ({args.num:,} pickle files)", d),
                    ("fit_disk (zarr store of `sample_to_disk`, chunks of 1,000)", z),
                )
            ),
            "",
            "s / epoch: the mean of the epochs after the first; the first includes "
            "compilation and, for the pickle files, reading every file (later epochs "
            "read the bank's cache).",
            "",
            f"Epoch time on disk / in memory: {out['epoch_time_ratio']:.2f} (pickle files), "
            f"{out['zarr_epoch_time_ratio']:.2f} (zarr) (target <= 1.3). {args.epochs} "
            f"epochs of batch {args.batch_size}; writing the bank took "
            f"{out['write_seconds']:.0f} s (files) and {out['zarr_write_seconds']:.0f} s "
            f"(zarr, simulation included). Machine: {out['machine']}.",
        ]
        replace_block("disk-bank", "\n".join(rows))


if __name__ == "__main__":
    main()
