"""Issue 23: multiverse analysis from one network, against exact posteriors in every
universe, and its cost as the number of universes K grows.

Model family (NumPyro): mu ~ N(prior_mean, prior_sd^2), y_1..y_20 ~ N(mu, noise_sd^2); every
universe's posterior is normal and exact. Choices: prior_sd in {0.3, 3} ("narrow", "wide"),
noise_sd in {1, 3} ("low", "high"), prior_mean in {0, 1}.

- **Exact check** (``--part exact``): the 2 x 2 multiverse (prior_sd x noise_sd), one
  ``BasicWorkflow`` with the library defaults (default network, ``mv.default_adapter()``),
  ``fit_offline`` on 2 x 10^4 simulations and nothing else set; C2ST (sbibm protocol,
  10,000 draws against 10,000 exact draws) on ``--per-universe`` held-out datasets of each
  universe (simulated in that universe). Target: <= 0.56 in every universe.
- **Cost in K** (``--part scaling``): K = 1 (the first universe alone, a plain model),
  2 (prior_sd), 4 (x noise_sd), 8 (x prior_mean) at the same 2 x 10^4 simulations, and
  K = 8 at 4 x 10^4; mean and largest C2ST over the universes' held-out datasets (3 per
  universe, 5,000 draws), training time. Target: K = 8 within 0.02 of K = 1 with at most 2x
  its simulations and training time.

    python benchmarks/multiverse.py [--part exact scaling] [--seeds 1 3 5] [--write-md]
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

N_OBS = 20
OPTIONS = {
    "prior_sd": {"narrow": 0.3, "wide": 3.0},
    "noise_sd": {"low": 1.0, "high": 3.0},
    "prior_mean": {"zero": 0.0, "one": 1.0},
}
TARGET_EXACT = 0.56


def model(prior_mean=0.0, prior_sd=0.3, noise_sd=1.0, y=None):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(prior_mean, prior_sd))
    with numpyro.plate("n", N_OBS):
        numpyro.sample("y", dist.Normal(mu, noise_sd), obs=y)


def exact(ybar, prior_mean, prior_sd, noise_sd):
    a, b = 1 / prior_sd**2, N_OBS / noise_sd**2
    return (a * prior_mean + b * ybar) / (a + b), 1 / np.sqrt(a + b)


def scored(bf, c2st, wf, mv, per_universe, num_draws, seed) -> tuple[list, list]:
    """C2ST of every held-out dataset of every universe (a plain model when ``mv`` is a
    NumPyroModel: one universe with the default arguments)."""
    rng = np.random.default_rng(seed)
    out, names = [], []
    if isinstance(mv, bf.NumPyroModel):
        universes = [({}, "default")]
    else:
        universes = [(mv.values(u), n) for u, n in zip(mv.universes, mv.names, strict=True)]
    for i, (values, name) in enumerate(universes):
        kw = {"prior_mean": 0.0, "prior_sd": 0.3, "noise_sd": 1.0, **values}
        m_i = bf.NumPyroModel(model, observed="y", model_kwargs=values)
        y = m_i.simulator.sample(per_universe, seed=seed + 100 + i)["y"]
        if isinstance(mv, bf.NumPyroModel):
            draws = wf.sample(conditions={"y": y}, num_samples=num_draws, seed=seed + 1)["mu"]
        else:
            draws = bf.sensitivity.multiverse_draws(
                wf, mv, {"y": y}, name, num_samples=num_draws, seed=seed + 1
            )["mu"][:, 0]
        m, sd = np.broadcast_arrays(*exact(y.mean(axis=1), **kw))
        for j in range(per_universe):
            ref = rng.normal(m[j], sd[j], size=num_draws)
            out.append(float(c2st(ref[:, None], draws[j][:, :1], seed=j)))
            names.append(name)
    return out, names


#: ``regression_adjustment=`` for BasicWorkflow (None: the library's default); set by
#: ``--regression-adjustment on|off``
ADJUSTMENT: bool | None = None
#: ``--observed-as``: "flat" (the default adapter) or "set" (observed_route.py)
OBSERVED_AS = "flat"


def train(bf, choices: dict, num_simulations: int, seed: int):
    base = bf.NumPyroModel(model, observed="y")
    mv = bf.sensitivity.Multiverse(base, choices) if choices else base
    data = mv.simulator.sample(num_simulations, seed=seed)
    adapter, summary = observed_route.adapter_and_summary(bf, mv, OBSERVED_AS)
    wf = bf.BasicWorkflow(
        simulator=mv.simulator,
        adapter=adapter,
        summary_network=summary,
        regression_adjustment=ADJUSTMENT,
    )
    t0 = time.perf_counter()
    history = wf.fit_offline(data, seed=seed + 1, progress=False)
    return wf, mv, time.perf_counter() - t0, len(history["loss"])


def part_exact(bf, c2st, per_universe: int, seeds, report: Path | None = None) -> list[dict]:
    """One training per seed; the held-out datasets are the same for every seed. With
    ``report``, each seed's multiverse analysis of 4 datasets of the last universe is
    written to ``report/multiverse_seed<N>``."""
    choices = {k: OPTIONS[k] for k in ("prior_sd", "noise_sd")}
    runs = []
    for seed in seeds:
        wf, mv, train_s, epochs = train(bf, choices, 20_000, seed=seed)
        c2, names = scored(bf, c2st, wf, mv, per_universe, 10_000, seed=10)
        by = {n: [c for c, m in zip(c2, names, strict=True) if m == n] for n in mv.names}
        for n, v in by.items():
            print(f"exact, seed {seed}: {n}: C2ST {np.round(v, 3)}", flush=True)
        runs.append({"seed": seed, "train_s": train_s, "epochs": epochs, "c2st": by})
        if report is not None:
            y = mv.models[-1].simulator.sample(4, seed=seed + 1000)["y"]
            res = bf.sensitivity.multiverse_analysis(wf, mv, {"y": y}, seed=seed + 1)
            res.write_report(report / f"multiverse_seed{seed}", history=wf.history)
    return runs


def part_scaling(bf, c2st) -> list[dict]:
    runs = []
    for k, names, n_sims in [
        (1, (), 20_000),
        (2, ("prior_sd",), 20_000),
        (4, ("prior_sd", "noise_sd"), 20_000),
        (8, ("prior_sd", "noise_sd", "prior_mean"), 20_000),
        (8, ("prior_sd", "noise_sd", "prior_mean"), 40_000),
    ]:
        wf, mv, train_s, epochs = train(bf, {c: OPTIONS[c] for c in names}, n_sims, seed=2)
        c2, _ = scored(bf, c2st, wf, mv, 3, 5_000, seed=20)
        runs.append(
            {"K": k, "simulations": n_sims, "train_s": train_s, "epochs": epochs,
             "c2st_mean": float(np.mean(c2)), "c2st_max": float(np.max(c2))}
        )  # fmt: skip
        print(f"scaling: {runs[-1]}", flush=True)
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", nargs="+", default=["exact", "scaling"])
    p.add_argument("--per-universe", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 5])
    p.add_argument("--write-md", action="store_true")
    p.add_argument(
        "--regression-adjustment",
        choices=["on", "off"],
        default=None,
        help="set BasicWorkflow(regression_adjustment=) instead of the default; results go "
        "to results/multiverse_adjustment_<on|off>.json",
    )
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="write each seed's multiverse report to REPORT/multiverse_seed<N> (for "
        "scripts/screenshot_report.py)",
    )
    observed_route.add_argument(p, "multiverse")
    a = p.parse_args()
    global ADJUSTMENT, OBSERVED_AS
    if a.regression_adjustment:
        ADJUSTMENT = a.regression_adjustment == "on"
    OBSERVED_AS = a.observed_as

    import amortized as bf
    from amortized.diagnostics import c2st

    out = {"machine": machine()}
    if "exact" in a.part:
        out["exact"] = part_exact(bf, c2st, a.per_universe, a.seeds, a.report)
    if "scaling" in a.part:
        out["scaling"] = part_scaling(bf, c2st)
    RESULTS.mkdir(exist_ok=True)
    name = "multiverse" + ("_set" if OBSERVED_AS == "set" else "")
    if a.regression_adjustment:
        name += f"_adjustment_{a.regression_adjustment}"
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2))
    if a.write_md and not a.regression_adjustment and OBSERVED_AS == "flat":
        write_md(out, a.per_universe)


def write_md(out: dict, per_universe: int) -> None:
    lines = [f"Machine: {out['machine']}. Command: `python benchmarks/multiverse.py --write-md`."]
    if "exact" in out:
        names = list(out["exact"][0]["c2st"])
        lines += [
            "",
            f"2 x 2 multiverse, library defaults, `fit_offline` on 20,000 simulations, one "
            f"training per seed; the largest C2ST of {per_universe} held-out datasets per "
            f"universe (target <= {TARGET_EXACT}):",
            "",
            "| seed | train (s) | epochs | " + " | ".join(names) + " |",
            "|---|---|---|" + "---|" * len(names),
        ]
        for r in out["exact"]:
            cells = " | ".join(f"{max(r['c2st'][n]):.3f}" for n in names)
            lines.append(f"| {r['seed']} | {r['train_s']:.0f} | {r['epochs']} | {cells} |")
    if "scaling" in out:
        lines += [
            "",
            "Cost in the number of universes K (3 held-out datasets per universe, 5,000 draws):",
            "",
            "| K | simulations | train (s) | epochs | C2ST mean | C2ST max |",
            "|---|---|---|---|---|---|",
        ]
        for r in out["scaling"]:
            lines.append(
                f"| {r['K']} | {r['simulations']:,} | {r['train_s']:.0f} | {r['epochs']} | "
                f"{r['c2st_mean']:.3f} | {r['c2st_max']:.3f} |"
            )
    replace_block("multiverse", "\n".join(lines))


if __name__ == "__main__":
    main()
