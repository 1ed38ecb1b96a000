"""sbibm benchmark: train at a simulation budget, score C2ST on all 10 observations.

Usage::

    python benchmarks/sbibm_c2st.py --budget 10000 [--tasks two_moons slcp ...]
        [--network default|coupling_spline|coupling_affine|coupling_affine_spline|
                   coupling_affine_final_spline|flow_matching|diffusion_model|
                   consistency_model|stable_consistency_model]
        [--observations 1 2 ...]
        [--jobs 2] [--classifier sklearn|jax] [--ensemble K] [--members-dir DIR] [--write-md]

Per task: simulate ``budget`` datasets (5% held out for validation), train, draw 10,000
posterior samples for each observation, and compute C2ST against the 10,000 sbibm reference
draws exactly as in ``shared/benchmarks/sbibm/README.md``. Results are appended to
``benchmarks/results/sbibm_<budget>_<network>.json`` as each task finishes; ``--write-md``
rewrites the table in BENCHMARKS.md from every results file.

``--network default`` is the library as a new user meets it: ``BasicWorkflow`` builds its
default inference network and ``fit_offline(train, validation_data=val, seed=...)`` runs with
nothing else set (default batch size; early stopping, not an epoch count, ends training).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from amortized.simulators.benchmarks import SBIBM_TASKS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# the reference posteriors: AMORTIZED_SBIBM, else the shared/ folder beside the checkout
SBIBM = Path(os.environ.get("AMORTIZED_SBIBM") or ROOT.parent / "shared" / "benchmarks" / "sbibm")
RESULTS = HERE / "results"
# bernoulli_glm_raw (issue 4): the 100 raw binary observations instead of the summary
# statistics; same reference posteriors (V^T y is sufficient)
TASKS = [*SBIBM_TASKS, "bernoulli_glm_raw"]
REFERENCE = {"bernoulli_glm_raw": ("bernoulli_glm", "observation_raw.csv")}
#: the --network names of coupling flows with spline layers (the CouplingFlow transform
#: after "coupling_"); --bins applies to these
SPLINE_NETWORKS = ("coupling_spline", "coupling_affine_spline", "coupling_affine_final_spline")
NPE_10K = {
    "two_moons": 0.606,
    "gaussian_linear": 0.552,
    "gaussian_linear_uniform": 0.553,
    "slcp": 0.901,
    "gaussian_mixture": 0.661,
    "bernoulli_glm": 0.678,
    "bernoulli_glm_raw": 0.765,
    "sir": 0.680,
    "lotka_volterra": 0.997,
}
TARGET_10K = {
    "two_moons": 0.58,
    "gaussian_linear": 0.54,
    "gaussian_linear_uniform": 0.54,
    "slcp": 0.80,
    "gaussian_mixture": 0.60,
    "bernoulli_glm": 0.65,
    "bernoulli_glm_raw": 0.72,
    "sir": 0.55,  # issue 20: the best network at or below 0.55
    "lotka_volterra": 0.997,  # issue 20: at or below NPE
}


def network(
    name: str,
    widths: list[int] | None = None,
    bins: int | None = None,
    total_steps: int | None = None,
):
    """``auto`` (handled in run_task) trains the affine and the spline flow and keeps the one
    with the lower validation loss: a choice made on held-out simulations only, as a modeller
    would make it, never on the reference posterior. ``widths``: the subnets' hidden widths
    (default: the network's own); ``bins``: the spline flow's bins (``--bins`` is refused
    for a network without a spline); ``total_steps``: the optimizer steps the fit will take
    (the ConsistencyModel's schedule)."""
    import amortized as bf

    if name == "default":  # main() refuses sizes with it
        return None
    sub = {} if widths is None else {"subnet_kwargs": {"widths": list(widths)}}
    if name == "coupling_affine":
        return bf.networks.CouplingFlow(**sub)
    if name in SPLINE_NETWORKS:
        tk = {} if bins is None else {"transform_kwargs": {"bins": bins}}
        return bf.networks.CouplingFlow(transform=name.removeprefix("coupling_"), **sub, **tk)
    if name == "flow_matching":
        return bf.networks.FlowMatching(**sub)
    if name == "diffusion_model":
        return bf.networks.DiffusionModel(**sub)
    if name == "consistency_model":
        return bf.networks.ConsistencyModel(total_steps=total_steps, **sub)
    if name == "stable_consistency_model":
        return bf.networks.StableConsistencyModel(**sub)
    raise ValueError(f"unknown network {name!r}")


def default_batch_size() -> int:
    """``fit_offline``'s default batch size, read from its signature (not restated here)."""
    import inspect

    import amortized as bf

    return inspect.signature(bf.BasicWorkflow.fit_offline).parameters["batch_size"].default


def stopped_label(epochs_run: list[int], stops: bool = True) -> str:
    """The epochs the stopping rule ran, for the table (a range over ensemble members);
    ``stops=False``: a network whose validation loss does not rank epochs (the consistency
    models), which the default fit trains for a fixed number of epochs."""
    if not epochs_run:
        return "loaded"
    lo, hi = min(epochs_run), max(epochs_run)
    how = "stopped" if stops else "fixed"
    return f"{lo} ({how})" if lo == hi else f"{lo}-{hi} ({how})"


def size_label(widths: list[int] | None, bins: int | None, learning_rate: float | None) -> str:
    """The non-default network size and learning rate, for labels and member folders."""
    parts = []
    if widths is not None:
        parts.append(f"widths {'x'.join(map(str, widths))}")
    if bins is not None:
        parts.append(f"{bins} bins")
    if learning_rate is not None:
        parts.append(f"lr {learning_rate:g}")
    return ", ".join(parts)


def box_adapter(task: str, method: str, conditions: str = "inference_conditions"):
    """The adapter that declares ``task``'s box-uniform prior (``PRIOR_BOUNDS``) with
    ``Adapter.constrain(method=method)``, as a modeller would, and routes ``theta`` to the
    inference variables and ``x`` to ``conditions``."""
    import amortized as bf
    from amortized.simulators.benchmarks import PRIOR_BOUNDS

    lo, hi = PRIOR_BOUNDS[task]
    return (
        bf.Adapter()
        .convert_dtype()
        .constrain("theta", lower=lo, upper=hi, method=method)
        .rename("theta", "inference_variables")
        .rename("x", conditions)
    )


def holdout(sims: dict, budget: int) -> tuple[dict, dict]:
    """(training, validation) split of ``budget`` simulations: the first 5% held out."""
    n_val = max(1, budget // 20)
    return {k: v[n_val:] for k, v in sims.items()}, {k: v[:n_val] for k, v in sims.items()}


def load_reference(task: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    folder, obs_file = REFERENCE.get(task, (task, "observation.csv"))
    d = SBIBM / folder / f"num_observation_{k}"
    obs = np.loadtxt(d / obs_file, delimiter=",", skiprows=1, ndmin=2)
    ref = np.loadtxt(d / "reference_posterior_samples.csv.bz2", delimiter=",", skiprows=1)
    return obs, ref


def _c2st_job(args):
    ref, approx, classifier = args
    from amortized.diagnostics import c2st

    return c2st(ref, approx, classifier=classifier)


def _glm_pairs(y: np.ndarray) -> np.ndarray:
    from amortized.simulators.benchmarks import bernoulli_glm_design

    return np.concatenate([y[:, None], bernoulli_glm_design()], axis=1)


# Known structure routed as a modeller would: slcp's 8 numbers are 4 i.i.d. 2-D draws, an
# exchangeable set for a summary network (same simulator, observations reshaped to (4, 2));
# bernoulli_glm_raw's 100 observations are conditionally independent given theta and their
# design rows: a set of (y_t, V_t) pairs, whose mean-pooled DeepSet can learn V^T y.
# Per task: (simulator, observation -> set, summary network).
SET_TASKS = {
    "slcp": ("slcp_set", lambda o: o.reshape(4, 2), "SetTransformer"),
    "bernoulli_glm_raw": ("bernoulli_glm_raw_set", _glm_pairs, "DeepSet"),
}


def run_task(
    task: str,
    budget: int,
    net_name: str,
    observations: list[int],
    epochs: int,
    batch_size: int,
    seed: int,
    jobs: int,
    structure: bool = True,
    constrain: str | None = None,
    classifier: str = "sklearn",
    ensemble: int = 1,
    members_dir: str | None = None,
    widths: list[int] | None = None,
    bins: int | None = None,
    learning_rate: float | None = None,
    regression_adjustment: bool | None = None,
) -> dict:
    import amortized as bf
    from amortized.simulators.benchmarks import PRIOR_BOUNDS

    as_set = structure and task in SET_TASKS
    size = size_label(widths, bins, learning_rate)
    routing = (
        dict(
            summary_variables="x",
            summary_network=getattr(bf.networks, SET_TASKS[task][2])(summary_dim=16),
        )
        if as_set
        else dict(inference_conditions="x")
    )
    if constrain and task in PRIOR_BOUNDS:
        adapter = box_adapter(
            task, constrain, "summary_variables" if as_set else "inference_conditions"
        )
        routing = {
            "adapter": adapter,
            **{k: v for k, v in routing.items() if k == "summary_network"},
        }
    simulator = bf.simulators.benchmarks.get_task(SET_TASKS[task][0] if as_set else task)

    def make_workflow(name: str):
        from amortized.workflow.basic import DEFAULT_EPOCHS

        # consistency models train for fixed epochs (their loss does not rank epochs)
        steps = (epochs or DEFAULT_EPOCHS) * (
            len(train["theta"]) // (batch_size or default_batch_size())
        )
        net = network(name, widths, bins, steps)
        return bf.BasicWorkflow(
            simulator=simulator,
            **({} if net is None else {"inference_network": net}),
            **({} if learning_rate is None else {"initial_learning_rate": learning_rate}),
            regression_adjustment=regression_adjustment,
            **({} if "adapter" in routing else {"inference_variables": "theta"}),
            **routing,
        )

    def train_workflow(name: str, fit_seed: int):
        wf = make_workflow(name)
        if epochs is None:  # the library's defaults: the stopping rule ends training
            hist = wf.fit_offline(train, validation_data=val, seed=fit_seed, progress=False)
        else:
            hist = wf.fit_offline(
                train,
                epochs=epochs,
                batch_size=batch_size,
                validation_data=val,
                seed=fit_seed,
                restore_best=wf.inference_network.validation_loss_ranks_epochs,
            )
        epochs_run.append(len(hist["loss"]))
        return wf, hist

    epochs_run = []  # epochs each trained member ran (the stopping rule's choice by default)
    trained = []  # members trained in this run (loaded ones took no training time)

    def member(name: str, k: int):
        """Member k of an ensemble of ``name`` networks (k = 0: the single network): trained
        with seed ``seed + 1 + 1000 k``; with ``members_dir``, saved there and loaded again
        by a later run with the same settings. Returns (approximator, best validation loss)."""
        fit_seed = seed + 1 + 1000 * k
        if members_dir is None:
            wf_k, hist_k = train_workflow(name, fit_seed)
            trained.append(k)
            return wf_k.approximator, float(np.min(hist_k["val_loss"]))
        tag = f"{task}_{budget}_{name}_{constrain}_{int(structure)}_{epochs}x{batch_size}"
        if size:
            tag += "_" + size.replace(", ", "_").replace(" ", "")
        path = Path(members_dir) / f"{tag}_seed{fit_seed}"
        if (path / "val_loss.json").exists():
            print(f"  {task}: member {k} loaded from {path}", flush=True)
            val_loss = json.loads((path / "val_loss.json").read_text())
            return bf.load(path / "workflow").approximator, val_loss
        wf_k, hist_k = train_workflow(name, fit_seed)
        trained.append(k)
        wf_k.save(path / "workflow")
        val_loss = float(np.min(hist_k["val_loss"]))
        (path / "val_loss.json").write_text(json.dumps(val_loss))
        return wf_k.approximator, val_loss

    sims = simulator.sample(budget, seed=seed)
    train, val = holdout(sims, budget)
    candidates = ["coupling_affine", "coupling_spline"] if net_name == "auto" else [net_name]
    t0 = time.perf_counter()
    best = None
    for cand in candidates:
        cand_approx, val_loss = member(cand, 0)
        print(f"  {task}: {cand} best validation loss {val_loss:.4f}", flush=True)
        if best is None or val_loss < best[0]:
            best = (val_loss, cand, cand_approx)
    best_val_loss, chosen, approximator = best
    if ensemble > 1:
        # more members of the chosen network on the same simulations, each with its own
        # initialization and batch order (member 0 is the network trained above)
        approximator = bf.approximators.EnsembleApproximator(
            [approximator] + [member(chosen, k)[0] for k in range(1, ensemble)]
        )
    train_s = time.perf_counter() - t0
    refs, obs = [], []
    for k in observations:
        o, r = load_reference(task, k)
        obs.append(SET_TASKS[task][1](o[0]) if as_set else o[0])
        refs.append(r)
    t1 = time.perf_counter()
    draws = approximator.sample(conditions={"x": np.stack(obs)}, num_samples=10_000, seed=seed + 2)[
        "theta"
    ]
    sample_s = time.perf_counter() - t1
    jobs_in = [(refs[i], draws[i], classifier) for i in range(len(observations))]
    t2 = time.perf_counter()
    scores = []
    # Printed as each observation finishes: a 10-D C2ST takes minutes per observation.
    if jobs == 0:
        # every fold of every observation as one vmapped classifier run (fast on a GPU)
        from amortized.diagnostics.c2st import c2st_many

        scores = c2st_many(refs, [draws[i] for i in range(len(observations))]).tolist()
        for k, score in zip(observations, scores, strict=True):
            print(f"  {task} observation {k}: C2ST {score:.3f}", flush=True)
    elif jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawned, not forked: a child forked from this process (JAX's threads running)
        # deadlocks as soon as it calls JAX (the compiled classifier)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
            for k, score in zip(observations, ex.map(_c2st_job, jobs_in), strict=True):
                scores.append(score)
                print(f"  {task} observation {k}: C2ST {score:.3f}", flush=True)
    else:
        for k, job in zip(observations, jobs_in, strict=True):
            scores.append(_c2st_job(job))
            print(f"  {task} observation {k}: C2ST {scores[-1]:.3f}", flush=True)
    c2st_s = time.perf_counter() - t2
    if net_name == "auto":
        net_name = f"auto: {chosen}"
    if constrain and task in PRIOR_BOUNDS:
        how = "" if constrain == "default" else f" ({constrain})"
        net_name = f"{net_name}, prior support constrained{how}"
    if size:
        net_name = f"{net_name} ({size})"
    if epochs is None and not net_name.startswith("default"):
        net_name = f"{net_name}, default fit"
    if regression_adjustment:
        net_name = f"{net_name}, regression adjustment"
    if ensemble > 1:
        net_name = f"{net_name} x{ensemble} ensemble"
    if as_set:
        net_name = f"{net_name} + {SET_TASKS[task][2]} (x as a set)"
    return {
        "task": task,
        "budget": budget,
        "network": net_name,
        "epochs": epochs
        if epochs is not None
        else stopped_label(epochs_run, approximator.validation_loss_ranks_epochs),
        "batch_size": batch_size if batch_size is not None else default_batch_size(),
        "seed": seed,
        "observations": observations,
        "c2st": scores,
        "c2st_mean": float(np.mean(scores)),
        "c2st_classifier": classifier,
        "ensemble": ensemble,
        "train_seconds": train_s,
        "seconds_per_epoch": train_s / max(1, sum(epochs_run)),
        "networks_trained": len(trained),
        "sample_seconds": sample_s,
        "c2st_seconds": c2st_s,
        "best_val_loss": best_val_loss,
        "machine": machine(),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jax

    return f"{os.cpu_count()} cores, {cpu}, {jax.default_backend()} (jax {jax.__version__})"


def write_markdown() -> None:
    rows = []
    for f in sorted(RESULTS.glob("sbibm_*.json")):
        for r in json.loads(f.read_text()):
            rows.append(r)
    if not rows:
        return
    lines = [
        "| task | budget | network | epochs | batch | C2ST mean (obs) | NPE 10^4 | target "
        "| s/epoch* | 10k draws per obs, all obs, incl. compile (s)* | machine |",
        "|---" * 11 + "|",
    ]
    for r in sorted(rows, key=lambda r: (r["budget"], TASKS.index(r["task"]), r["network"])):
        npe = NPE_10K[r["task"]] if r["budget"] == 10_000 else "-"
        tgt = TARGET_10K[r["task"]] if r["budget"] == 10_000 else "-"
        nobs = len(r["observations"])
        # scores from the compiled classifier are marked (same test, see diagnostics.c2st)
        how = ", JAX" if r.get("c2st_classifier", "sklearn") == "jax" else ""
        # replicates with other simulations and initializations (--seed) get their own row
        net = r["network"] + (f", seed {r['seed']}" if r.get("seed") else "")
        lines.append(
            f"| {r['task']} | {r['budget']} | {net} | {r['epochs']} | {r['batch_size']} "
            f"| {r['c2st_mean']:.3f} ({nobs}{how}) | {npe} | {tgt} | {r['seconds_per_epoch']:.3f} "
            f"| {r['sample_seconds']:.2f} | {r['machine']} |"
        )
    replace_block("sbibm", "\n".join(lines))


def replace_block(name: str, body: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in
    BENCHMARKS.md (appending the block if it is not there yet)."""
    md = ROOT / "BENCHMARKS.md"
    text = md.read_text() if md.exists() else ""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text += "\n" + block + "\n"
    md.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=int, default=10_000, choices=[1_000, 10_000, 100_000])
    p.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    p.add_argument(
        "--network",
        default="coupling_spline",
        choices=[
            "default",
            "auto",
            "coupling_affine",
            *SPLINE_NETWORKS,
            "flow_matching",
            "diffusion_model",
            "consistency_model",
            "stable_consistency_model",
        ],
        help="default: the library's own inference network and fit_offline defaults",
    )
    p.add_argument("--observations", nargs="+", type=int, default=list(range(1, 11)))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument(
        "--default-fit",
        action="store_true",
        help="fit_offline's defaults (batch size, early stopping) with the chosen --network "
        "(implied by --network default)",
    )
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="parallel C2ST processes; 0: all folds of all observations as one vmapped run "
        "of the JAX classifier (for a GPU)",
    )
    p.add_argument(
        "--ensemble",
        type=int,
        default=1,
        help="train this many networks on the same simulations and sample their mixture "
        "(EnsembleApproximator)",
    )
    p.add_argument(
        "--members-dir",
        default=None,
        help="save each trained network here and load it in later runs with the same "
        "settings (a larger --ensemble then trains only the new members)",
    )
    p.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="split the CPU into this many JAX devices for data-parallel training "
        "(bf.set_cpu_devices)",
    )
    p.add_argument(
        "--widths",
        nargs="+",
        type=int,
        default=None,
        help="hidden widths of the inference network's subnets (default: the network's own)",
    )
    p.add_argument("--bins", type=int, default=None, help="bins of the spline flow")
    p.add_argument("--learning-rate", type=float, default=None, help="default: 5e-4")
    p.add_argument(
        "--regression-adjustment",
        action="store_true",
        help="regress the parameters linearly on the data before training (the approximator "
        "option; off by default for posterior networks)",
    )
    p.add_argument("--write-md", action="store_true")
    p.add_argument("--flat", action="store_true", help="route every task's data as a flat vector")
    p.add_argument("--tag", default="", help="suffix of the results file")
    p.add_argument(
        "--constrain",
        nargs="?",
        const="default",
        default=None,
        choices=["default", "sigmoid", "probit"],
        help="declare box-uniform priors' supports (Adapter.constrain, optionally its method)",
    )
    p.add_argument(
        "--classifier",
        default="sklearn",
        choices=["sklearn", "jax"],
        help="C2ST classifier: scikit-learn's (the sbibm protocol) or the same training "
        "compiled with JAX (minutes instead of hours for the 10-D tasks)",
    )
    a = p.parse_args()
    if a.cpu_devices:
        import amortized as bf

        bf.set_cpu_devices(a.cpu_devices)  # before anything runs on JAX
    if a.jobs == 0 and a.classifier != "jax":
        p.error("--jobs 0 (one vmapped C2ST run) needs --classifier jax")
    with_spline = (*SPLINE_NETWORKS, "auto")
    if a.bins is not None and a.network not in with_spline:
        p.error(f"--bins sets the spline flow's bins; --network {a.network} has no spline")
    if a.jobs < 0 or a.ensemble < 1:
        p.error("--jobs must be >= 0 and --ensemble >= 1")
    # the number of optimizer steps, not epochs, sets training quality: scale epochs so
    # that each budget gets about 30k steps (10^3: 300 epochs of 8 batches is too few)
    if a.network == "default" and (a.widths or a.bins or a.learning_rate):
        p.error(
            "--network default runs the library's defaults: no --widths, --bins or --learning-rate"
        )
    if a.network == "default" or a.default_fit:
        if a.epochs or a.batch_size:
            p.error(
                "the default fit (--network default, --default-fit) takes no --epochs or "
                "--batch-size"
            )
        batch, epochs = None, None
    else:
        batch = a.batch_size or {1_000: 64, 10_000: 128, 100_000: 256}[a.budget]
        epochs = a.epochs or {1_000: 500, 10_000: 300, 100_000: 100}[a.budget]
    RESULTS.mkdir(exist_ok=True)
    fit = "_default_fit" if a.default_fit and a.network != "default" else ""
    out = RESULTS / f"sbibm_{a.budget}_{a.network}{fit}{a.tag}.json"
    results = json.loads(out.read_text()) if out.exists() else []
    for task in a.tasks:
        r = run_task(
            task,
            a.budget,
            a.network,
            a.observations,
            epochs,
            batch,
            a.seed,
            a.jobs,
            not a.flat,
            a.constrain,
            a.classifier,
            a.ensemble,
            a.members_dir,
            a.widths,
            a.bins,
            a.learning_rate,
            a.regression_adjustment or None,
        )
        print(
            f"{task}: C2ST {r['c2st_mean']:.3f} {np.round(r['c2st'], 3).tolist()} "
            f"train {r['train_seconds']:.0f}s c2st {r['c2st_seconds']:.0f}s",
            flush=True,
        )
        results = [x for x in results if (x["task"], x["network"]) != (task, r["network"])]
        results.append(r)
        out.write_text(json.dumps(results, indent=1))
    if a.write_md:
        write_markdown()


if __name__ == "__main__":
    main()
