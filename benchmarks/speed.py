"""Speed and memory on this machine: time per training epoch, draws per second, peak memory.

Usage::

    python benchmarks/speed.py [--write-md]
    python benchmarks/speed.py --cpu-devices 2 [--write-md]  # CPU split into 2 devices
    python benchmarks/speed.py --accelerator [--write-md]   # on a GPU machine
    python benchmarks/speed.py --flows-only [--write-md]    # inference networks only

Settings match the BayesFlow measurements in DESIGN.md: two_moons, 10^4 simulations,
batch 256, CouplingFlow(depth=6, affine, subnet widths 128x128); FlowMatching and
DiffusionModel with their defaults. Each timing is the median of repeated runs after
compilation. The memory check trains offline on 10^5 two_moons simulations in a fresh
process and reports its peak resident set size. ``--accelerator`` times training and
sampling only (no BayesFlow column, no memory check), adds a large-batch epoch and 10^6
draws (100 datasets x 10^4), and writes ``results/speed_accelerator.json`` and the
"speed-accelerator" table. ``--flows-only`` times the inference networks alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sbibm_c2st import RESULTS, machine, replace_block  # noqa: E402


def coupling_flow():
    """The coupling flow of the speed comparison with BayesFlow (depth 6, affine, 128x128)."""
    import amortized as bf

    # affine couplings as BayesFlow's default flow, so that the comparison is like for like
    # (the library's default has a spline last since session 31)
    return bf.networks.CouplingFlow(
        depth=6, transform="affine", subnet_kwargs={"widths": [128, 128]}
    )


def two_moons_1e4() -> dict:
    """The 10^4 two_moons simulations every training timing here uses."""
    import amortized as bf

    return bf.simulators.benchmarks.two_moons().sample(10_000, seed=0)


def _median_time(fn, repeats=5):
    fn()  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def training_epoch_seconds(net, data, batch_size=256, epochs=6, fits=1):
    """Median wall time of the training steps of epochs 2..n of a fit (epoch 1 compiles);
    with ``fits`` > 1, the median over that many fits (the time of an epoch on this
    machine varies by 20% between processes and minutes)."""
    import amortized as bf

    times = []
    for _ in range(fits):
        wf = bf.BasicWorkflow(
            inference_network=net, inference_variables="theta", inference_conditions="x"
        )
        hist = wf.fit_offline(data, epochs=epochs, batch_size=batch_size, seed=1, progress=False)
        times.append(float(np.median(hist["epoch_seconds"][1:])))
    return float(np.median(times)), wf


def peak_memory_offline_1e5(repeats: int = 3) -> float:
    """Peak resident memory (MiB) of a fresh process that trains on 10^5 simulations; the
    largest of ``repeats`` processes (compilation makes it vary by about 100 MiB)."""
    code = (
        "import resource, amortized as bf\n"
        "wf = bf.BasicWorkflow(simulator=bf.simulators.benchmarks.two_moons(),\n"
        "    inference_variables='theta', inference_conditions='x')\n"
        "d = wf.simulate(100_000, seed=0)\n"
        "wf.fit_offline(d, epochs=3, batch_size=256, validation_data=5000, seed=1,"
        " progress=False)\n"
        # VmHWM is the peak of this process's own memory map; ru_maxrss would also count
        # the parent's resident size at fork time (Linux carries it across exec)
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
    )
    peaks = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        peaks.append(int(out.stdout.strip().splitlines()[-1]) / 1024.0)  # KiB -> MiB
    return max(peaks)


def set_transformer_epoch_seconds() -> float:
    """SetTransformer + CouplingFlow epoch on 10^4 sets of 50 (the data BayesFlow trains on
    in ``bayesflow_compare.py --speed-set``), with the same dimensions (see SET_BATCH there)."""
    from bayesflow_compare import DATA, SET_BATCH

    import amortized as bf

    d = np.load(DATA / "sets.npz")
    wf = bf.BasicWorkflow(
        inference_network=coupling_flow(),
        summary_network=bf.networks.SetTransformer(
            summary_dim=16, embed_dims=[64, 64], num_heads=[4, 4], num_seeds=4, mlp_widths=[256]
        ),
        inference_variables="theta",
        summary_variables="x",
    )
    hist = wf.fit_offline(
        {"theta": d["theta"], "x": d["x"]}, epochs=4, batch_size=SET_BATCH, seed=1, progress=False
    )
    return float(np.median(hist["epoch_seconds"][1:]))


def flow_timings(large: bool = False) -> dict:
    """Training epochs and draws of the coupling flows and flow matching on two_moons;
    ``large`` adds a batch-2048 epoch and 10^6 draws (10^4 for each of 100 datasets), the
    sizes where an accelerator's strengths show."""
    import jax

    import amortized as bf

    data = two_moons_1e4()
    one, many = {"x": data["x"][:1]}, {"x": data["x"][:100]}
    res = {"machine": machine(), "devices": str(jax.devices())}
    if large:
        res["coupling_epoch_s_b2048"], _ = training_epoch_seconds(
            coupling_flow(),
            data,
            batch_size=2048,
        )
    res["coupling_epoch_s"], wf = training_epoch_seconds(coupling_flow(), data, fits=3)
    res["coupling_spline_epoch_s"], _ = training_epoch_seconds(
        bf.networks.CouplingFlow(transform="spline"), data
    )
    res["flow_matching_epoch_s"], wf_fm = training_epoch_seconds(bf.networks.FlowMatching(), data)
    res["diffusion_epoch_s"], wf_dm = training_epoch_seconds(bf.networks.DiffusionModel(), data)
    # total_steps covers the timing fit's 6 epochs of 40 steps (its schedule does not
    # change a step's cost)
    consistency = bf.networks.ConsistencyModel(total_steps=1000)
    res["consistency_epoch_s"], wf_cm = training_epoch_seconds(consistency, data)
    res["stable_consistency_epoch_s"], wf_scm = training_epoch_seconds(
        bf.networks.StableConsistencyModel(), data
    )
    trained = (
        ("coupling", wf),
        ("flow_matching", wf_fm),
        ("diffusion", wf_dm),
        ("consistency", wf_cm),
        ("stable_consistency", wf_scm),
    )
    for name, w in trained:
        res[f"{name}_10k_draws_s"] = _median_time(
            lambda w=w: w.sample(conditions=one, num_samples=10_000, seed=1)
        )
        if large:
            res[f"{name}_1M_draws_s"] = _median_time(
                lambda w=w: w.sample(conditions=many, num_samples=10_000, seed=1)
            )
    return res


def _json_tail(out: str) -> dict:
    """The JSON object a child process printed last (warnings may come before it)."""
    starts = [i for i in range(len(out)) if out[i] == "{" and (i == 0 or out[i - 1] == "\n")]
    for i in reversed(starts):
        try:
            return json.loads(out[i:])
        except json.JSONDecodeError:
            continue
    raise ValueError(f"no JSON object at the end of the output: {out[-500:]!r}")


def versus_bayesflow(bf_python: str, rounds: int, cpu_devices: int | None) -> dict:
    """The coupling-flow epoch, ours and BayesFlow's, measured in alternating fresh
    processes (one fit each, median of epochs 2-6), ``rounds`` times: the two sides then
    see the same drift of this machine's speed, which moves single timings by 15-20%."""
    ours_cmd = [sys.executable, str(Path(__file__)), "--epoch-once"]
    if cpu_devices:
        ours_cmd += ["--cpu-devices", str(cpu_devices)]
    theirs_cmd = [bf_python, str(HERE / "bayesflow_compare.py"), "--speed-once"]
    env = dict(os.environ, KERAS_BACKEND="jax")
    if not (RESULTS / "bayesflow_data" / "two_moons.npz").exists():
        # BayesFlow trains on our simulations, written by our Python (fresh clone)
        subprocess.run(
            [sys.executable, str(HERE / "bayesflow_compare.py"), "--make-data"], check=True
        )
    ours, theirs = [], []
    for r in range(rounds):
        for cmd, into in ((ours_cmd, ours), (theirs_cmd, theirs)):
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            into.append(_json_tail(out.stdout)["coupling_epoch_s"])
        print(f"round {r + 1}: ours {ours[-1]:.3f} s, BayesFlow {theirs[-1]:.3f} s", flush=True)
    res = {
        "machine": machine(),
        "cpu_devices": cpu_devices or 1,
        "rounds": rounds,
        "ours_epoch_s": ours,
        "bayesflow_epoch_s": theirs,
        "ours_median_s": float(np.median(ours)),
        "bayesflow_median_s": float(np.median(theirs)),
        "round_ratios": [a / b for a, b in zip(ours, theirs, strict=True)],
    }
    res["ratio_of_medians"] = res["ours_median_s"] / res["bayesflow_median_s"]
    res["median_round_ratio"] = float(np.median(res["round_ratios"]))
    return res


FLOW_ROWS = [
    ("CouplingFlow epoch (depth 6, affine, 128x128, batch 256, 10^4 sims)", "coupling_epoch_s"),
    ("10,000 draws, CouplingFlow", "coupling_10k_draws_s"),
    ("CouplingFlow spline epoch (defaults, batch 256)", "coupling_spline_epoch_s"),
    ("FlowMatching epoch (defaults, batch 256)", "flow_matching_epoch_s"),
    ("10,000 draws, FlowMatching (defaults)", "flow_matching_10k_draws_s"),
    ("DiffusionModel epoch (defaults, batch 256)", "diffusion_epoch_s"),
    ("10,000 draws, DiffusionModel (defaults)", "diffusion_10k_draws_s"),
    ("ConsistencyModel epoch (defaults, batch 256)", "consistency_epoch_s"),
    ("10,000 draws, ConsistencyModel (defaults)", "consistency_10k_draws_s"),
    ("StableConsistencyModel epoch (defaults, batch 256)", "stable_consistency_epoch_s"),
    ("10,000 draws, StableConsistencyModel (defaults)", "stable_consistency_10k_draws_s"),
]


def write_flows_markdown(res: dict) -> None:
    """The inference networks' epoch and draw times from one run on one machine."""
    lines = [
        f"Machine: {res['machine']}, {res['devices']}. Seconds, median after compilation.",
        "",
        "| measurement | amortized (s) |",
        "|---|---|",
    ]
    lines += [f"| {label} | {res[key]:.3f} |" for label, key in FLOW_ROWS if key in res]
    replace_block("speed-flows", "\n".join(lines))


def write_accelerator_markdown(res: dict) -> None:
    # the CPU column: the inference networks' own run (--flows-only), one device
    cpu_file = RESULTS / "speed_flows.json"
    cpu = json.loads(cpu_file.read_text()) if cpu_file.exists() else {}
    # the large sizes, which have no CPU counterpart, after their batch-256 / 10^4 rows
    rows = []
    for label, key in FLOW_ROWS:
        rows.append((label, key, key))
        if key == "coupling_epoch_s":
            rows.append(("same, batch 2048", "coupling_epoch_s_b2048", None))
        if key.endswith("_10k_draws_s"):
            network = label.split(", ")[1]
            rows.append((f"10^6 draws (10^4 for each of 100 datasets), {network}",
                         key.replace("_10k_", "_1M_"), None))  # fmt: skip
    lines = [
        f"Machine: {res['machine']}, {res['devices']}. Seconds, median after compilation.",
        "",
        f"| measurement | amortized (s) | same on {cpu.get('machine', 'the CPU')} (s) |",
        "|---|---|---|",
    ]
    for label, key, cpu_key in rows:
        if key not in res:
            continue
        other = f"{cpu[cpu_key]:.3f}" if cpu_key and cpu_key in cpu else ""
        lines.append(f"| {label} | {res[key]:.4f} | {other} |")
    replace_block("speed-accelerator", "\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--write-md", action="store_true")
    p.add_argument("--accelerator", action="store_true", help="training and sampling only")
    p.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="split the CPU into this many JAX devices (bf.set_cpu_devices) and time "
        "training and sampling only; writes results/speed_cpu<N>.json",
    )
    p.add_argument(
        "--versus-bayesflow",
        metavar="PYTHON",
        default=None,
        help="a Python with BayesFlow 2.1: time the coupling-flow epoch against BayesFlow's "
        "in alternating fresh processes; writes results/speed_versus_bayesflow.json",
    )
    p.add_argument("--rounds", type=int, default=7, help="rounds of --versus-bayesflow")
    p.add_argument(
        "--flows-only",
        action="store_true",
        help="time the inference networks side by side (training epoch, 10,000 draws); "
        "writes results/speed_flows.json and the speed-flows table",
    )
    p.add_argument("--epoch-once", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.epoch_once:
        import amortized as bf

        if a.cpu_devices:
            bf.set_cpu_devices(a.cpu_devices)
        epoch_s, _ = training_epoch_seconds(coupling_flow(), two_moons_1e4())
        print(json.dumps({"coupling_epoch_s": epoch_s}))
        return
    if a.versus_bayesflow:
        res = versus_bayesflow(a.versus_bayesflow, a.rounds, a.cpu_devices)
        print(json.dumps(res, indent=1))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "speed_versus_bayesflow.json").write_text(json.dumps(res, indent=1))
        return
    if a.cpu_devices:
        import amortized as bf

        bf.set_cpu_devices(a.cpu_devices)  # before anything runs on JAX
        res = flow_timings()
        res["set_transformer_epoch_s"] = set_transformer_epoch_seconds()
        print(json.dumps(res, indent=1))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"speed_cpu{a.cpu_devices}.json").write_text(json.dumps(res, indent=1))
        if a.write_md:
            write_markdown(json.loads((RESULTS / "speed.json").read_text()))
        return
    if a.flows_only:
        res = flow_timings()
        print(json.dumps(res, indent=1))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "speed_flows.json").write_text(json.dumps(res, indent=1))
        if a.write_md:
            write_flows_markdown(res)
        return
    if a.accelerator:
        res = flow_timings(large=True)
        print(json.dumps(res, indent=1))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "speed_accelerator.json").write_text(json.dumps(res, indent=1))
        if a.write_md:
            write_accelerator_markdown(res)
        return
    res = flow_timings()
    res["set_transformer_epoch_s"] = set_transformer_epoch_seconds()
    res["peak_rss_mib_offline_1e5"] = peak_memory_offline_1e5()
    print(json.dumps(res, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "speed.json").write_text(json.dumps(res, indent=1))
    if a.write_md:
        write_markdown(res)


def write_markdown(res: dict) -> None:
    """The speed table from ``res`` (one device), the CPU split into devices
    (``speed_cpu<N>.json``, if measured) and BayesFlow's timings; the ratio is the faster
    of ours over BayesFlow's."""
    bf_file = RESULTS / "bayesflow_speed.json"
    theirs = json.loads(bf_file.read_text()) if bf_file.exists() else {}
    split_files = sorted(RESULTS.glob("speed_cpu*.json"))
    split = json.loads(split_files[-1].read_text()) if split_files else {}
    n_split = split_files[-1].stem.removeprefix("speed_cpu") if split_files else ""

    # BayesFlow's flow matching was measured on this machine for DESIGN.md (0.74 s per
    # epoch, 64 s for 10,000 draws with its adaptive solver); not re-run here
    design = {
        "flow_matching_epoch_s": "0.74 (DESIGN.md)",
        "flow_matching_10k_draws_s": "64 (DESIGN.md)",
    }

    def other(key):
        ours = min(res[key], split.get(key, np.inf))
        if key in theirs:
            return f"{theirs[key]:.3f} | {ours / theirs[key]:.2f}"
        return f"{design.get(key, 'not measured')} | "

    def mine(key):
        return f"{res[key]:.3f} | " + (f"{split[key]:.3f}" if key in split else "")

    rows = [
        *FLOW_ROWS,
        (
            "SetTransformer + CouplingFlow epoch (10^4 sets of 50, batch 64, same dimensions)",
            "set_transformer_epoch_s",
        ),
    ]
    lines = [
        f"Machine: {res['machine']}. Seconds, median after compilation.",
        "",
        f"| measurement | amortized (s) | amortized, CPU split into {n_split or 'N'} devices "
        "(s) | BayesFlow 2.1, JAX (s) | ratio |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {label} | {mine(key)} | {other(key)} |" for label, key in rows if key in res]
    vs_file = RESULTS / "speed_versus_bayesflow.json"
    if vs_file.exists():
        vs = json.loads(vs_file.read_text())
        lines += [
            "",
            f"Coupling-flow epoch in {vs['rounds']} alternating rounds of fresh processes "
            f"(`--versus-bayesflow`, ours with the CPU split into {vs['cpu_devices']} "
            f"device(s); machine: {vs['machine']}): ours {vs['ours_median_s']:.3f} s, "
            f"BayesFlow {vs['bayesflow_median_s']:.3f} s (medians), ratio "
            f"**{vs['ratio_of_medians']:.3f}**; per round "
            + ", ".join(f"{r:.3f}" for r in vs["round_ratios"])
            + ".",
        ]
    lines += [
        "",
        f"Peak resident memory, offline training on 10^5 two_moons simulations "
        f"(batch 256, largest of 3 fresh processes): {res['peak_rss_mib_offline_1e5']:.0f} MiB.",
    ]
    replace_block("speed", "\n".join(lines))


if __name__ == "__main__":
    main()
