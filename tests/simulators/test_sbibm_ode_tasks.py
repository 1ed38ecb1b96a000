"""sir and lotka_volterra against sbibm's own files: each published observation must be a
plausible draw of our simulator at its true parameters (same ODE, times, population and
observation noise), and the priors must be sbibm's log-normals."""

import numpy as np
import pytest
from scipy import stats

from amortized.simulators import benchmarks
from tests.conftest import sbibm_path


def _observation(task, k):
    folder = sbibm_path() / task / f"num_observation_{k}"
    obs = np.loadtxt(folder / "observation.csv", delimiter=",", skiprows=1)
    theta = np.loadtxt(folder / "true_parameters.csv", delimiter=",", skiprows=1)
    return obs, theta


def test_sir_observations_are_plausible_at_their_true_parameters():
    days = np.arange(0, 161, 17, dtype=float)
    for k in range(1, 11):
        obs, theta = _observation("sir", k)
        infected = benchmarks._ode_solutions(
            "sir", benchmarks._sir_field, (1 - 1e-6, 1e-6), days, theta[None]
        )[0, :, 1]
        p = np.clip(infected, 0.0, 1.0)
        # two-sided binomial tail probability of each count out of 1000; 100 counts in all,
        # so a smallest tail of 1e-4 is unremarkable, while a day shifted by one step (17
        # days), I0 of 10 or gamma for 1/gamma moves the epidemic's peak count (350-470)
        # by tens of binomial sd
        tail = np.minimum(stats.binom.cdf(obs, 1000, p), stats.binom.sf(obs - 1, 1000, p))
        assert tail.min() > 1e-4, (k, obs, np.round(1000 * p, 2))


def test_lotka_volterra_observations_are_plausible_at_their_true_parameters():
    times = np.arange(0, 201, 21) * 0.1
    for k in range(1, 11):
        obs, theta = _observation("lotka_volterra", k)
        u = benchmarks._ode_solutions(
            "lotka_volterra", benchmarks._lv_field, (30.0, 1.0), times, theta[None]
        )[0]
        u = np.concatenate([u[:, 0], u[:, 1]])
        z = (np.log(obs) - np.log(np.clip(u, 1e-10, 1e4))) / 0.1
        # log-normal noise of sd 0.1: |z| of 20 values stays below 4.5 (a chance of 1e-4);
        # prey and predators swapped, or the times of another subsample, are far off
        assert np.abs(z).max() < 4.5, (k, np.round(z, 1))


@pytest.mark.parametrize(
    ("task", "loc", "scale"),
    [
        ("sir", np.log([0.4, 0.125]), [0.5, 0.2]),
        ("lotka_volterra", [-0.125, -3.0, -0.125, -3.0], [0.5] * 4),
    ],
)
def test_priors_are_sbibms_log_normals_and_data_have_the_task_shape(task, loc, scale):
    sims = benchmarks.get_task(task).sample(4000, seed=0)
    log_theta = np.log(sims["theta"])
    # 4000 draws: the mean's standard error is scale / 63 <= 0.008; 0.03 is four of them
    np.testing.assert_allclose(log_theta.mean(0), loc, atol=0.03)
    np.testing.assert_allclose(log_theta.std(0), scale, rtol=0.05)
    assert sims["x"].shape == (4000, 10 if task == "sir" else 20)
    assert np.all(np.isfinite(sims["x"])) and np.all(sims["x"] >= 0)


def test_each_initial_state_gets_its_own_solve():
    # a solve compiled for one population must not serve another: at day 0 the infected
    # share is the initial one, 1 / N, for N = 10^6 and then 10^3
    days, theta = np.array([0.0, 17.0]), np.array([[0.4, 0.125]])
    for n in (1e6, 1e3):
        ys = benchmarks._ode_solutions(
            "sir", benchmarks._sir_field, (1 - 1 / n, 1 / n), days, theta
        )
        np.testing.assert_allclose(ys[0, 0, 1], 1 / n, rtol=1e-6)
