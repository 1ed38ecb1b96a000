"""Issue 19: the seed's scenarios with library defaults, against exact posteriors.

Each scenario is a model written the documented way (``bf.make_simulator``, an ``Adapter``,
``bf.BasicWorkflow`` with the default inference network and, where the data are a set or a
series, the default summary network), trained with ``fit_offline(data, seed=...)`` on 2 x 10^4
simulations and nothing else set (no epochs, batch size, widths or learning rate). Each is
scored by C2ST (sbibm protocol: 10,000 draws against 10,000 exact draws) on held-out datasets
of several sizes.

- ``location_scale``: x_1..x_N ~ N(mu, sigma^2), sigma^2 ~ InvGamma(3, 2),
  mu | sigma ~ N(0, sigma^2), N ~ U{5..100}; conjugate (normal-inverse-gamma).
- ``constrained``: a rate lam ~ Gamma(2, 1) with 10 Poisson counts, a probability
  p ~ Beta(2, 2) with 10 Binomial(5, p) counts, a precision tau ~ Gamma(3, 2) with 10 draws
  of N(0, 1 / tau); three conjugate posteriors (gamma, beta, gamma); no summary network.
- ``regression``: y_i = b0 + b1 x_i + sigma e_i, x_i ~ N(0, 1), sigma^2 ~ InvGamma(3, 2),
  (b0, b1) | sigma ~ N(0, sigma^2 I), N ~ U{10..100} (x, y) pairs as a set; conjugate.
- ``ar1``: y_t = phi y_{t-1} + sigma e_t from y_0 = 0, phi ~ U(-1, 1),
  sigma^2 ~ InvGamma(3, 2), T ~ U{20..200}; phi's marginal on a fine grid (20,001 points,
  inverse CDF with uniform jitter), sigma^2 | phi exact (inverse gamma).
- ``mixture``: x_1..x_30 ~ 0.5 N(mu1, 1) + 0.5 N(mu2, 1), mu1, mu2 ~ N(0, 2^2) iid: the
  labels are exchangeable, so the posterior has two mirror modes of equal mass; 2-D grid
  (400 x 400 over the data's range, jitter within a cell). Also reported: the share of draws
  with mu1 > mu2 (exactly 0.5 for the true posterior).

    python benchmarks/scenarios.py [--only location_scale ...] [--per-size 8] [--write-md]
    python benchmarks/scenarios.py --inference-network FlowMatching --write-md

``--inference-network`` trains another of the library's inference networks, with its own
defaults, in place of ``CouplingFlow`` (results and table of their own).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sbibm_c2st import RESULTS, machine, replace_block  # noqa: E402

NUM_SIMULATIONS = 20_000
NUM_DRAWS = 10_000
A0, B0 = 3.0, 2.0  # inverse-gamma prior of sigma^2 (mean 1) shared by three scenarios


def inv_gamma(a, b, rng, size=None):
    return b / rng.gamma(a, size=size)


@dataclass
class Scenario:
    """A model, its adapter and summary network, and its exact posterior.

    ``sizes``: label -> keyword arguments of the simulator's meta_fn for the test datasets
    (``{}`` for a model without one). ``exact(data, j, num, rng)``: ``num`` exact draws for
    test dataset ``j``, columns in the order of ``params``.
    """

    simulator: Callable
    adapter: Callable
    summary: Callable[[], object] | None
    params: list[str]
    sizes: dict[str, dict]
    exact: Callable
    conditions: list[str]
    target: float = 0.56


# -- location-scale ----------------------------------------------------------------------
def location_scale_simulator():
    import amortized as bf

    def prior():
        sigma2 = inv_gamma(A0, B0, np.random)
        return {"mu": np.random.normal(0.0, np.sqrt(sigma2), size=1), "sigma": np.sqrt([sigma2])}

    def likelihood(mu, sigma, N):
        return {"x": mu + sigma * np.random.normal(size=(N, 1))}

    return bf.make_simulator([prior, likelihood], meta_fn=lambda: {"N": np.random.randint(5, 101)})


def set_adapter(params, lower, upper, data="x"):
    import amortized as bf

    adapter = bf.Adapter().convert_dtype()
    for name in params:
        if name in lower or name in upper:
            adapter = adapter.constrain(name, lower=lower.get(name), upper=upper.get(name))
    return (
        adapter.concatenate(params, into="inference_variables")
        .rename(data, "summary_variables")
        .rename("mask", "summary_mask")
        .drop(["N"] if data != "y_series" else ["T"])
    )


def location_scale_exact(data, j, num, rng):
    x = data["x"][j, :, 0]
    n, xbar = len(x), x.mean()
    kn, an = 1.0 + n, A0 + n / 2
    bn = B0 + np.sum((x - xbar) ** 2) / 2 + n * xbar**2 / (2 * kn)
    sigma2 = inv_gamma(an, bn, rng, num)
    return np.stack([rng.normal(n * xbar / kn, np.sqrt(sigma2 / kn)), np.sqrt(sigma2)], axis=1)


# -- constrained parameters --------------------------------------------------------------
def constrained_simulator():
    import amortized as bf

    def prior():
        return {
            "lam": np.random.gamma(2.0, 1.0, size=1),
            "p": np.random.beta(2.0, 2.0, size=1),
            "tau": np.random.gamma(3.0, 1 / 2.0, size=1),
        }

    def likelihood(lam, p, tau):
        return {
            "counts": np.random.poisson(lam[0], size=10).astype(float),
            "successes": np.random.binomial(5, p[0], size=10).astype(float),
            "z": np.random.normal(0.0, 1 / np.sqrt(tau[0]), size=10),
        }

    return bf.make_simulator([prior, likelihood])


def constrained_adapter():
    import amortized as bf

    return (
        bf.Adapter()
        .convert_dtype()
        .constrain(["lam", "tau"], lower=0.0)
        .constrain("p", lower=0.0, upper=1.0)
        .concatenate(["lam", "p", "tau"], into="inference_variables")
        .concatenate(["counts", "successes", "z"], into="inference_conditions")
    )


def constrained_exact(data, j, num, rng):
    y, k, z = data["counts"][j], data["successes"][j], data["z"][j]
    lam = rng.gamma(2.0 + y.sum(), 1 / (1.0 + len(y)), size=num)
    p = rng.beta(2.0 + k.sum(), 2.0 + 5 * len(k) - k.sum(), size=num)
    tau = rng.gamma(3.0 + len(z) / 2, 1 / (2.0 + np.sum(z**2) / 2), size=num)
    return np.stack([lam, p, tau], axis=1)


# -- regression with varying N -----------------------------------------------------------
def regression_simulator():
    import amortized as bf

    def prior():
        sigma2 = inv_gamma(A0, B0, np.random)
        return {"beta": np.random.normal(0.0, np.sqrt(sigma2), size=2), "sigma": np.sqrt([sigma2])}

    def likelihood(beta, sigma, N):
        x = np.random.normal(size=N)
        y = beta[0] + beta[1] * x + sigma[0] * np.random.normal(size=N)
        return {"xy": np.stack([x, y], axis=1)}

    return bf.make_simulator([prior, likelihood], meta_fn=lambda: {"N": np.random.randint(10, 101)})


def regression_exact(data, j, num, rng):
    x, y = data["xy"][j, :, 0], data["xy"][j, :, 1]
    X = np.stack([np.ones_like(x), x], axis=1)
    prec = np.eye(2) + X.T @ X
    cov = np.linalg.inv(prec)
    mean = cov @ X.T @ y
    an = A0 + len(y) / 2
    bn = B0 + (y @ y - mean @ prec @ mean) / 2
    sigma2 = inv_gamma(an, bn, rng, num)
    z = rng.standard_normal((num, 2)) @ np.linalg.cholesky(cov).T
    beta = mean + z * np.sqrt(sigma2)[:, None]
    return np.concatenate([beta, np.sqrt(sigma2)[:, None]], axis=1)


# -- AR(1) with varying length -----------------------------------------------------------
def ar1_simulator():
    from scipy.signal import lfilter

    import amortized as bf

    def prior():
        return {
            "phi": np.random.uniform(-1.0, 1.0, size=1),
            "sigma": np.sqrt([inv_gamma(A0, B0, np.random)]),
        }

    def likelihood(phi, sigma, T):
        e = sigma[0] * np.random.normal(size=T)
        return {"y_series": lfilter([1.0], [1.0, -phi[0]], e)[:, None]}

    return bf.make_simulator([prior, likelihood], meta_fn=lambda: {"T": np.random.randint(20, 201)})


def ar1_exact(data, j, num, rng):
    y = data["y_series"][j, :, 0]
    prev = np.concatenate([[0.0], y[:-1]])
    t = len(y)
    # S(phi) = sum (y_t - phi y_{t-1})^2 = syy - 2 phi sxy + phi^2 sxx
    syy, sxy, sxx = y @ y, y @ prev, prev @ prev
    grid = np.linspace(-1.0, 1.0, 20_001)
    s = syy - 2 * grid * sxy + grid**2 * sxx
    logp = -(A0 + t / 2) * np.log(B0 + s / 2)
    w = np.exp(logp - logp.max())
    cdf = np.cumsum(w) / w.sum()
    cell = rng.uniform(size=num)
    idx = np.searchsorted(cdf, cell)
    phi = np.clip(grid[idx] + rng.uniform(-0.5, 0.5, num) * (grid[1] - grid[0]), -1.0, 1.0)
    s_phi = syy - 2 * phi * sxy + phi**2 * sxx
    sigma2 = inv_gamma(A0 + t / 2, B0 + s_phi / 2, rng, num)
    return np.stack([phi, np.sqrt(sigma2)], axis=1)


# -- two-component mixture ---------------------------------------------------------------
def mixture_simulator():
    import amortized as bf

    def prior():
        return {"mu": np.random.normal(0.0, 2.0, size=2)}

    def likelihood(mu):
        pick = np.random.randint(2, size=30)
        return {"x": (mu[pick] + np.random.normal(size=30))[:, None]}

    return bf.make_simulator([prior, likelihood])


def mixture_adapter():
    import amortized as bf

    return (
        bf.Adapter()
        .convert_dtype()
        .rename("mu", "inference_variables")
        .rename("x", "summary_variables")
    )


def mixture_exact(data, j, num, rng):
    x = data["x"][j, :, 0]
    lo, hi = min(x.min(), -6.0) - 3.0, max(x.max(), 6.0) + 3.0
    g = np.linspace(lo, hi, 400)
    ll = -0.5 * (x[None, :] - g[:, None]) ** 2  # (400, N)
    # log p(x_i | mu1, mu2) = log(0.5 e^{ll1} + 0.5 e^{ll2}), summed over i
    both = np.logaddexp(ll[:, None, :], ll[None, :, :]).sum(-1)
    logp = both - 0.5 * (g[:, None] ** 2 + g[None, :] ** 2) / 4.0
    w = np.exp(logp - logp.max()).ravel()
    idx = rng.choice(w.size, size=num, p=w / w.sum())
    step = g[1] - g[0]
    mu = np.stack([g[idx // 400], g[idx % 400]], axis=1)
    return mu + rng.uniform(-0.5, 0.5, size=mu.shape) * step


def scenarios() -> dict[str, Scenario]:
    import amortized as bf

    return {
        "location_scale": Scenario(
            location_scale_simulator,
            lambda: set_adapter(["mu", "sigma"], {"sigma": 0.0}, {}),
            lambda **kw: bf.networks.SetTransformer(**kw),
            ["mu", "sigma"],
            {"N=5": {"N": 5}, "N=20": {"N": 20}, "N=100": {"N": 100}},
            location_scale_exact,
            ["x"],
        ),
        "constrained": Scenario(
            constrained_simulator,
            constrained_adapter,
            None,
            ["lam", "p", "tau"],
            {"10 obs each": {}},
            constrained_exact,
            ["counts", "successes", "z"],
        ),
        "regression": Scenario(
            regression_simulator,
            lambda: set_adapter(["beta", "sigma"], {"sigma": 0.0}, {}, data="xy"),
            lambda **kw: bf.networks.SetTransformer(**kw),
            ["beta", "sigma"],
            {"N=10": {"N": 10}, "N=40": {"N": 40}, "N=100": {"N": 100}},
            regression_exact,
            ["xy"],
        ),
        "ar1": Scenario(
            ar1_simulator,
            lambda: set_adapter(
                ["phi", "sigma"], {"phi": -1.0, "sigma": 0.0}, {"phi": 1.0}, data="y_series"
            ),
            lambda **kw: bf.networks.TimeSeriesNetwork(**kw),
            ["phi", "sigma"],
            {"T=20": {"T": 20}, "T=60": {"T": 60}, "T=200": {"T": 200}},
            ar1_exact,
            ["y_series"],
        ),
        "mixture": Scenario(
            mixture_simulator,
            mixture_adapter,
            lambda **kw: bf.networks.SetTransformer(**kw),
            ["mu"],
            {"N=30": {}},
            mixture_exact,
            ["x"],
            target=0.60,
        ),
    }


def run(name: str, sc: Scenario, per_size: int, seed: int, overrides: dict) -> dict:
    """Train with the defaults and score; ``overrides`` (experiments only, reported with
    the result): fit_offline keywords, ``summary_kwargs`` for the summary network and
    ``workflow_kwargs`` for ``BasicWorkflow`` (e.g. ``initial_learning_rate``) and
    ``inference_network`` (a class name of ``bf.networks``, built with its defaults and
    ``inference_kwargs``) in place of the default ``CouplingFlow``, and ``average_decay``
    (the default optimizer's moving average of the weights,
    :data:`amortized.training.optimizer.AVERAGE_DECAY`)."""
    import amortized as bf
    import amortized.training.optimizer as optimizer
    from amortized.diagnostics import c2st

    if "average_decay" in overrides:
        optimizer.AVERAGE_DECAY = float(overrides["average_decay"])

    sim = sc.simulator()
    inference = {}
    if "inference_network" in overrides:
        cls = getattr(bf.networks, overrides["inference_network"])
        inference["inference_network"] = cls(**overrides.get("inference_kwargs", {}))
    wf = bf.BasicWorkflow(
        simulator=sim,
        adapter=sc.adapter(),
        **inference,
        summary_network=None
        if sc.summary is None
        else sc.summary(**overrides.get("summary_kwargs", {})),
        **overrides.get("workflow_kwargs", {}),
    )
    t = time.perf_counter()
    data = (
        sim.sample_ragged(NUM_SIMULATIONS, chunk_size=64, seed=seed)
        if sim.meta_fn is not None
        else sim.sample(NUM_SIMULATIONS, seed=seed)
    )
    sim_secs = time.perf_counter() - t
    t = time.perf_counter()
    not_fit = (
        "summary_kwargs",
        "workflow_kwargs",
        "inference_network",
        "inference_kwargs",
        "average_decay",
    )
    settings = {k: v for k, v in overrides.items() if k not in not_fit}
    history = wf.fit_offline(data, seed=seed, progress=False, **settings)
    train_secs = time.perf_counter() - t
    epochs = len(history["loss"])
    print(
        f"{name}: simulated in {sim_secs:.0f} s, trained {epochs} epochs in {train_secs:.0f} s "
        f"(best epoch {history.get('best_epoch')})",
        flush=True,
    )
    rng = np.random.default_rng(seed)
    out = {
        "c2st": {},
        "train_seconds": train_secs,
        "simulate_seconds": sim_secs,
        "epochs": epochs,
        "best_epoch": history.get("best_epoch"),
        "restored_epoch": history.get("restored_epoch"),
        "best_vs_last": history.get("best_vs_last"),
        # the curves, to see where the epochs go (rounded: the results file stays readable)
        "val_loss": [round(v, 4) for v in history.get("val_loss", [])],
        "lr_reductions": history.get("lr_reductions"),
        "epoch_seconds": [round(v, 2) for v in history["epoch_seconds"]],
        "simulations": NUM_SIMULATIONS,
        "target": sc.target,
        "machine": machine(),
        "overrides": overrides,
    }
    for s, (label, meta) in enumerate(sc.sizes.items()):
        test = sim.sample(per_size, seed=10_000 + s, **meta)
        draws = wf.sample(
            conditions={k: test[k] for k in sc.conditions},
            num_samples=NUM_DRAWS,
            seed=20_000 + s,
            progress=False,
        )
        approx = np.concatenate([draws[p] for p in sc.params], axis=-1)
        scores = []
        for j in range(per_size):
            scores.append(c2st(sc.exact(test, j, NUM_DRAWS, rng), approx[j]))
        out["c2st"][label] = scores
        if name == "mixture":
            out["mode_share"] = [
                float(np.mean(approx[j, :, 0] > approx[j, :, 1])) for j in range(per_size)
            ]
            print(f"  share mu1 > mu2: {np.round(out['mode_share'], 3).tolist()}", flush=True)
        print(f"  {label}: C2ST {np.round(scores, 3).tolist()}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--per-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tag", default="")
    p.add_argument(
        "--override",
        default="{}",
        help="experiments only: JSON of fit_offline keywords, summary_kwargs, "
        "workflow_kwargs (BasicWorkflow's, e.g. initial_learning_rate) and "
        "inference_network (a bf.networks class name) with inference_kwargs, e.g. "
        '\'{"batch_size": 128, "summary_kwargs": {"embed_dims": [32]}}\'',
    )
    p.add_argument(
        "--inference-network",
        default=None,
        help="another of the library's inference networks with its defaults (a bf.networks "
        "class name, e.g. FlowMatching) in place of CouplingFlow; results and table of "
        "their own",
    )
    p.add_argument("--write-md", action="store_true")
    p.add_argument("--md-only", action="store_true", help="rewrite the table from the results file")
    a = p.parse_args()
    overrides = json.loads(a.override)
    if overrides and (not a.tag or a.write_md):
        # results with changed settings must never replace the defaults' table
        raise SystemExit("--override needs --tag (its own results file) and no --write-md")
    if a.inference_network:
        if "inference_network" in overrides:
            raise SystemExit("--inference-network and an override of it: give one")
        overrides["inference_network"] = a.inference_network
        if not a.tag:
            a.tag = "-" + re.sub(r"(?<!^)(?=[A-Z])", "-", a.inference_network).lower()
    out_file = RESULTS / f"scenarios{a.tag}.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    if a.md_only:
        write_markdown(results, "scenarios" + a.tag)
        return
    table = scenarios()
    for name in a.only or list(table):
        if name not in table:
            raise SystemExit(f"--only: unknown scenario {name!r}; known: {list(table)}")
        results[name] = run(name, table[name], a.per_size, a.seed, overrides)
        out_file.write_text(json.dumps(results, indent=1))
    if a.write_md:
        write_markdown(results, "scenarios" + a.tag)


def write_markdown(results: dict, block: str = "scenarios") -> None:
    lines = [
        "| scenario | C2ST by dataset size (mean of datasets) | worst | target | epochs (best) "
        "| train (s) | simulations |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        sizes = ", ".join(f"{k}: {np.mean(v):.3f}" for k, v in r["c2st"].items())
        worst = max(max(v) for v in r["c2st"].values())
        extra = ""
        if "mode_share" in r:
            extra = f"; mu1 > mu2 in {min(r['mode_share']):.0%}-{max(r['mode_share']):.0%}"
        lines.append(
            f"| {name} | {sizes}{extra} | {worst:.3f} | {r['target']} | {r['epochs']} "
            f"({r['best_epoch']}) | {r['train_seconds']:.0f} | {r['simulations']:,} |"
        )
    lines.append(f"\nMachine: {next(iter(results.values()))['machine']}.")
    replace_block(block, "\n".join(lines))


if __name__ == "__main__":
    main()
