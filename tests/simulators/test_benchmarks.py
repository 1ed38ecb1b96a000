"""Our sbibm simulators against the files sbibm ships."""

import numpy as np
import pytest

from amortized.simulators import benchmarks
from tests.conftest import sbibm_path


def _csv(path):
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def test_bernoulli_glm_design_and_statistics_match_sbibm():
    base = sbibm_path() / "bernoulli_glm"
    design = np.loadtxt(base / "design_matrix.csv", delimiter=",")
    # the stimulus is regenerated from RandomState(42) in float32: agreement to float32 rounding
    np.testing.assert_allclose(benchmarks.bernoulli_glm_design(), design, atol=1e-6)
    for k in (1, 5, 10):
        y = _csv(base / f"num_observation_{k}" / "observation_raw.csv")
        x = _csv(base / f"num_observation_{k}" / "observation.csv")
        np.testing.assert_allclose(y @ design, x, atol=1e-4)


@pytest.mark.parametrize("name", sorted(set(benchmarks.TASKS) - {"bernoulli_glm_raw_set"}))
def test_tasks_shapes_and_observation_shapes(name):
    out = benchmarks.get_task(name).sample(3, seed=0)
    obs_file = "observation_raw.csv" if name == "bernoulli_glm_raw" else "observation.csv"
    task_dir = {"bernoulli_glm_raw": "bernoulli_glm", "slcp_set": "slcp"}.get(name, name)
    obs = _csv(sbibm_path() / task_dir / "num_observation_1" / obs_file)
    ref = _csv(sbibm_path() / task_dir / "num_observation_1" / "true_parameters.csv")
    assert out["x"].reshape(3, -1).shape[1:] == obs.shape[1:]
    assert out["theta"].shape[1:] == ref.shape[1:]


def test_gaussian_linear_moments():
    # x = theta + noise, both with variance 0.1: Var(x) = 0.2; 2e4 draws give a standard
    # error of 0.2 * sqrt(2 / 2e4) = 0.002 on the variance, so 0.01 is a 5-sigma tolerance
    out = benchmarks.gaussian_linear().sample(20000, seed=1)
    np.testing.assert_allclose(out["x"].var(axis=0), 0.2, atol=0.01)
    np.testing.assert_allclose(np.cov(out["theta"][:, 0], out["x"][:, 0])[0, 1], 0.1, atol=0.01)


def test_two_moons_matches_reference_likelihood_geometry():
    # For theta = 0 the observation lies on a half circle of radius ~0.1 centred at (0.25, 0)
    out = benchmarks.two_moons().sample(5000, seed=2, theta=np.zeros(2))
    r = np.hypot(out["x"][:, 0] - 0.25, out["x"][:, 1])
    np.testing.assert_allclose(r.mean(), 0.1, atol=1e-3)
    assert np.all(out["x"][:, 0] >= 0.25 - 1e-9)


def test_unknown_task():
    with pytest.raises(KeyError, match="available"):
        benchmarks.get_task("nope")


def test_slcp_set_is_the_flat_slcp_reshaped():
    flat = benchmarks.slcp().sample(5, seed=4)
    as_set = benchmarks.slcp(as_set=True).sample(5, seed=4)
    np.testing.assert_array_equal(as_set["x"].reshape(5, 8), flat["x"])
    # the sbibm observation layout is (x1, y1, x2, y2, ...): row i of the set is draw i
    obs = _csv(sbibm_path() / "slcp" / "num_observation_1" / "observation.csv")
    assert obs.reshape(4, 2).shape == as_set["x"].shape[1:]


def test_bernoulli_glm_raw_set_is_raw_y_beside_the_design():
    raw = benchmarks.bernoulli_glm(raw=True).sample(4, seed=5)
    pairs = benchmarks.bernoulli_glm(raw=True, with_design=True).sample(4, seed=5)
    assert pairs["x"].shape == (4, 100, 11)
    np.testing.assert_array_equal(pairs["x"][..., 0], raw["x"])
    np.testing.assert_array_equal(pairs["x"][2, :, 1:], benchmarks.bernoulli_glm_design())
    # the sufficient statistic V^T y is the pairs' sum of y_t V_t
    stat = benchmarks.bernoulli_glm().sample(4, seed=5)["x"]
    np.testing.assert_allclose((pairs["x"][..., :1] * pairs["x"][..., 1:]).sum(1), stat)
