"""Silent failures at the approximator's boundary: conditions the model never sees (1),
draws on the boundary of an open support (3) and conditions far outside the training data
(4). Each test failed on the code before these checks existed."""

import warnings

import numpy as np
import pytest

import amortized as bf
from amortized.adapters.elementwise import SupportBoundaryWarning
from amortized.adapters.usage import key_routes
from amortized.approximators.condition_checks import (
    OutOfDistributionWarning,
    UnusedDataWarning,
)


def prior():
    return {"mu": np.random.normal(size=2), "sigma": np.random.gamma(4.0, 0.25)}


def likelihood(mu, sigma):
    return {"x": mu + sigma * np.random.normal(size=2)}


SIM = bf.make_simulator([prior, likelihood])
SMALL = bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [32, 32]})


def _adapter(conditioned: bool = True):
    a = (
        bf.Adapter()
        .convert_dtype()
        .constrain("sigma", lower=0)
        .concatenate(["mu", "sigma"], into="inference_variables")
    )
    return a.rename("x", "inference_conditions") if conditioned else a


@pytest.fixture(scope="module")
def trained():
    wf = bf.BasicWorkflow(simulator=SIM, adapter=_adapter(), inference_network=SMALL)
    wf.fit_offline(
        wf.simulate(1000, seed=1),
        epochs=2,
        batch_size=128,
        seed=2,
        progress=False,
        early_stopping=False,
    )
    return wf


def test_forgotten_condition_route_warns_at_fit_and_raises_at_sample():
    wf = bf.BasicWorkflow(simulator=SIM, adapter=_adapter(conditioned=False))
    with pytest.warns(UnusedDataWarning, match=r"unconditional.*\['x'\]"):
        wf.fit_offline(
            wf.simulate(300, seed=1),
            epochs=1,
            batch_size=100,
            seed=2,
            progress=False,
            early_stopping=False,
        )
    assert not wf.approximator.is_conditional
    # used to return (1, n, d) draws that ignored the three datasets
    with pytest.raises(KeyError, match=r"unconditional.*\['x'\] would be ignored"):
        wf.sample(conditions={"x": np.zeros((3, 2))}, num_samples=10, seed=0)
    assert wf.sample(conditions={}, num_samples=10, seed=0)["mu"].shape == (1, 10, 2)


def test_unknown_condition_key_raises_with_trained_keys(trained):
    with pytest.raises(
        KeyError, match=r"\['y'\] reach no input.*trained on conditions from \['x'\]"
    ):
        trained.sample(conditions={"x": np.zeros((3, 2)), "y": np.ones((3, 2))}, num_samples=5)
    # true parameters inside held-out simulations are not conditions: accepted
    draws = trained.sample(conditions=SIM.sample(3, seed=5), num_samples=5, seed=0)
    assert draws["mu"].shape == (3, 5, 2)


def test_key_routes_finds_each_route():
    adapter = _adapter().rename("N", "unused_name")
    data = SIM.sample(4, seed=0) | {"N": np.full((4, 1), 3.0)}
    routes = key_routes(adapter, data)
    assert routes == {
        "mu": {"inference_variables"},
        "sigma": {"inference_variables"},
        "x": {"inference_conditions"},
        "N": set(),
    }


def test_saturated_draws_move_inside_the_support_with_a_warning():
    # float32: the logistic function is exactly 1 beyond ~17 and exp overflows past ~89
    a = bf.Adapter().constrain("p", lower=0, upper=1).constrain("s", lower=0)
    y = {"p": np.array([-40.0, 0.0, 40.0], np.float32), "s": np.array([100.0, 0.0, -200.0])}
    y["s"] = y["s"].astype(np.float32)
    with pytest.warns(SupportBoundaryWarning, match=r"2 of 3 value\(s\) of 'p'"):
        out = a.inverse(y)
    assert np.all((out["p"] > 0) & (out["p"] < 1)) and out["p"][1] == 0.5
    assert np.all(np.isfinite(out["s"])) and np.all(out["s"] > 0)
    # the moved draws have finite log densities again
    _, ldj = a.forward(out, log_det_jac=True)
    assert all(np.all(np.isfinite(v)) for v in ldj.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # values inside give no warning at all
        a.inverse({"p": np.zeros(3, np.float32), "s": np.zeros(3, np.float32)})


def test_far_conditions_warn_by_dataset_and_variable(trained):
    x = np.array([[0.0, 0.0], [30.0, -30.0], [0.5, 0.2]])
    with pytest.warns(OutOfDistributionWarning, match=r"1 of 3 dataset.*dataset 1: .*\['x'\]"):
        trained.sample(conditions={"x": x}, num_samples=5, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfDistributionWarning)
        trained.sample(conditions={"x": x[[0, 2]]}, num_samples=5, seed=0)
    # the ranges travel with the saved model
    ranges = trained.approximator.condition_ranges["inference_conditions"]
    assert np.all(ranges["min"] < -1) and np.all(ranges["max"] > 1)


def test_far_conditions_warn_after_save_and_load(trained, tmp_path):
    loaded = bf.load(trained.save(tmp_path / "m.amz"))
    with pytest.warns(OutOfDistributionWarning, match="dataset 0"):
        loaded.sample(conditions={"x": np.full((1, 2), 40.0)}, num_samples=5, seed=0)


def test_set_rows_outside_the_training_range_are_found_and_padding_is_ignored():
    from amortized.approximators.condition_checks import compute_ranges, outside

    rng = np.random.default_rng(0)
    train = {"summary_variables": rng.uniform(-1, 1, size=(50, 10, 2))}
    ranges = compute_ranges(train)
    # the training range is about (-1, 1); the margin, half its width, reaches about 2
    sets = np.zeros((3, 4, 2))
    sets[1, 2, 0] = 3.5  # an observed row far out
    sets[2, 3, 1] = 99.0  # a padded row far out: masked, so it does not count
    mask = np.ones((3, 4))
    mask[2, 3] = 0
    found = outside(ranges, {"summary_variables": sets, "summary_mask": mask})
    assert list(found) == [1]
    ((feature, value, _),) = found[1]["summary_variables"]
    assert feature == 0 and value == 3.5
    sets[1, 2, 0] = 1.8
    assert outside(ranges, {"summary_variables": sets, "summary_mask": mask}) == {}
