"""Issue 24: the misspecification test in summary space, with the library's defaults.

Model: mu ~ N(0, 3^2), y_1..y_50 ~ N(mu, 1). A ``BasicWorkflow`` with the default inference
network and the documented summary network for sets (``bf.networks.SetTransformer()``, its
defaults) trains with ``fit_offline`` on 2 x 10^4 simulations and nothing else set. Then
``workflow.misspecification_test`` (2,000 reference and 1,000 null simulations, alpha 0.05)
runs on 400 datasets of each kind, mu drawn from the prior:

- well specified: y_i ~ N(mu, 1) (target: at most 7% rejected);
- outliers: 20% of the values shifted by +6 (target: at least 90% rejected);
- Student-t: y_i = mu + t_2 noise (target: at least 90% rejected).

    python benchmarks/misspecification.py [--seeds 1 2 3] [--write-md]
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

N_OBS, PRIOR_SD = 50, 3.0
NUM_SIMULATIONS, NUM_DATASETS = 20_000, 400
TARGETS = {"well specified": ("<=", 0.07), "20% outliers (+6)": (">=", 0.9),
           "Student-t (2 df)": (">=", 0.9)}  # fmt: skip


def prior():
    return {"mu": np.random.normal(0.0, PRIOR_SD)}


def likelihood(mu):
    return {"y": mu + np.random.normal(size=(N_OBS, 1))}


def datasets(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, PRIOR_SD, size=(NUM_DATASETS, 1, 1))
    well = mu + rng.normal(size=(NUM_DATASETS, N_OBS, 1))
    outliers = well.copy()
    outliers[:, : N_OBS // 5] += 6.0
    student = mu + rng.standard_t(2, size=(NUM_DATASETS, N_OBS, 1))
    return {"well specified": well, "20% outliers (+6)": outliers, "Student-t (2 df)": student}


def run(seed: int) -> dict:
    import amortized as bf

    sim = bf.make_simulator([prior, likelihood])
    wf = bf.BasicWorkflow(simulator=sim, summary_network=bf.networks.SetTransformer(),
                          inference_variables="mu", summary_variables="y")  # fmt: skip
    t = time.perf_counter()
    wf.fit_offline(wf.simulate(NUM_SIMULATIONS, seed=seed), batch_size=128, seed=seed + 100,
                   progress=False)  # fmt: skip
    train = time.perf_counter() - t
    out = {"seed": seed, "train_seconds": round(train, 1), "epochs": len(wf.history["loss"])}
    t = time.perf_counter()
    for name, y in datasets(seed + 200).items():
        res = wf.misspecification_test({"y": y.astype(np.float32)}, seed=seed + 300)
        out[name] = float(res.flagged.mean())
    out["test_seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(out), flush=True)
    return out


def write_md(out: dict) -> None:
    kinds = list(TARGETS)
    lines = [
        "Rejection rate of `workflow.misspecification_test` at alpha 0.05 over 400 datasets "
        f"each; y_1..y_{N_OBS} ~ N(mu, 1), mu ~ N(0, {PRIOR_SD:g}^2); defaults: "
        f"`SetTransformer()` + default inference network, `fit_offline` on "
        f"{NUM_SIMULATIONS:,} simulations. Machine: {out['machine']}. Command: "
        "`python benchmarks/misspecification.py --write-md`.",
        "",
        "| seed | " + " | ".join(kinds) + " | training (s) | epochs | three tests (s) |",
        "|---|" + "---|" * (len(kinds) + 3),
    ]
    for r in out["runs"]:
        cells = " | ".join(f"{r[k]:.3f}" for k in kinds)
        lines.append(
            f"| {r['seed']} | {cells} | {r['train_seconds']} | {r['epochs']} | "
            f"{r['test_seconds']} |"
        )
    lines.append(
        "| target | " + " | ".join(f"{op} {v:g}" for op, v in TARGETS.values()) + " | | | |"
    )
    replace_block("misspecification", "\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--write-md", action="store_true")
    a = p.parse_args()
    runs = [run(s) for s in a.seeds]
    out = {"machine": machine(), "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "misspecification.json").write_text(json.dumps(out, indent=2))
    if a.write_md:
        write_md(out)


if __name__ == "__main__":
    main()
