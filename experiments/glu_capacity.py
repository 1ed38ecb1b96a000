"""gaussian_linear_uniform: subnet size, spline bins and learning rate at 10^4 simulations,
scored by the validation loss (what a modeller sees) and by the KL divergence from the exact
posterior (what it means).

Usage::

    python experiments/glu_capacity.py [NAME ...] [--seed 1]   # default: every setting

Each setting trains one spline flow (probit map of the box, 100 epochs x 512, restore_best)
on the sbibm benchmark's split (``simulator.sample(10_000, seed=0)``, the first 500 held
out, as ``sbibm_c2st.py`` does) and prints its best validation loss, the epoch of that
loss, and the expected KL(p || q) over 256 prior-predictive datasets and over the 10 sbibm
observations. The exact posterior factorizes: theta_i | x ~ N(x_i, 0.1) truncated to (-1, 1),
so KL is estimated with 1,000 exact draws per dataset (``scipy.stats.truncnorm``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import truncnorm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))  # the shared helpers of sbibm_c2st
from sbibm_c2st import box_adapter, holdout, load_reference  # noqa: E402

SCALE = np.sqrt(0.1)
# name: (subnet widths, spline bins, learning rate); "default" is CouplingFlow(transform="spline")
SETTINGS = {
    "default": ((128, 128), 16, 5e-4),
    "w64": ((64, 64), 16, 5e-4),
    "w64_b8": ((64, 64), 8, 5e-4),
    "w64_b8_lr2e-4": ((64, 64), 8, 2e-4),
    "w32_b8_lr2e-4": ((32, 32), 8, 2e-4),
    "w32_b4_lr2e-4": ((32, 32), 4, 2e-4),
    "w16_b8_lr2e-4": ((16, 16), 8, 2e-4),
}


def exact_posterior(x: np.ndarray, num: int, rng: np.random.Generator):
    """``num`` exact draws ``(num, 10)`` for one dataset ``x`` and their log densities."""
    a, b = (-1.0 - x) / SCALE, (1.0 - x) / SCALE
    theta = truncnorm.rvs(a, b, loc=x, scale=SCALE, size=(num, x.size), random_state=rng)
    return theta, truncnorm.logpdf(theta, a, b, loc=x, scale=SCALE).sum(-1)


def expected_kl(approximator, xs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """KL(p(. | x) || q(. | x)) for each row of ``xs``, from 1,000 exact draws each."""
    draws, log_p = zip(*[exact_posterior(x, 1000, rng) for x in xs], strict=True)
    # float32 rounds draws within 6e-8 of the bound onto it, outside the open box
    theta = np.clip(np.stack(draws), -1 + 1e-5, 1 - 1e-5).astype(np.float32)
    log_q = approximator.log_prob_of_draws(
        draws={"theta": theta}, conditions={"x": xs.astype(np.float32)}
    )
    return (np.stack(log_p) - log_q).mean(axis=1)


def run(name: str, seed: int) -> None:
    import amortized as bf

    widths, bins, lr = SETTINGS[name]
    sim = bf.simulators.benchmarks.get_task("gaussian_linear_uniform")
    train, val = holdout(sim.sample(10_000, seed=0), 10_000)
    adapter = box_adapter("gaussian_linear_uniform", "probit")
    flow = bf.networks.CouplingFlow(
        transform="spline",
        subnet_kwargs={"widths": widths},
        transform_kwargs={"bins": bins},
    )
    wf = bf.BasicWorkflow(
        simulator=sim, inference_network=flow, adapter=adapter, initial_learning_rate=lr
    )
    t0 = time.perf_counter()
    hist = wf.fit_offline(
        train,
        epochs=100,
        batch_size=512,
        validation_data=val,
        seed=seed,
        restore_best=True,
        progress=False,
    )
    seconds = time.perf_counter() - t0
    val_loss = np.asarray(hist["val_loss"])
    rng = np.random.default_rng(123)
    theta0 = rng.uniform(-1, 1, (256, 10))
    xs = theta0 + SCALE * rng.normal(size=theta0.shape)
    obs = np.stack([load_reference("gaussian_linear_uniform", k)[0][0] for k in range(1, 11)])
    kl_prior = expected_kl(wf.approximator, xs, rng)
    kl_obs = expected_kl(wf.approximator, obs, rng)
    print(
        f"{name} (seed {seed}): best validation loss {val_loss.min():.3f} at epoch "
        f"{val_loss.argmin() + 1} (last {val_loss[-1]:.3f}); KL prior-predictive "
        f"{kl_prior.mean():.3f}, sbibm observations {kl_obs.mean():.3f}; {seconds:.0f} s",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", help=f"settings to run (default: all of {list(SETTINGS)})")
    p.add_argument("--seed", type=int, default=1, help="the fit's seed (initialization)")
    p.add_argument("--cpu-devices", type=int, default=2)
    a = p.parse_args()
    unknown = sorted(set(a.names) - set(SETTINGS))
    if unknown:
        p.error(f"unknown settings {unknown}; choose from {list(SETTINGS)}")
    import amortized as bf

    bf.set_cpu_devices(a.cpu_devices)
    for name in a.names or list(SETTINGS):
        run(name, a.seed)


if __name__ == "__main__":
    main()
