"""Prior elicitation: hyperparameters recovered from statements made by a known prior."""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import amortized as bf
from amortized.elicitation import ElicitationError, Quantiles, elicit

N = 20


def model(m0, s0, t, y=None):
    mu = numpyro.sample("mu", dist.Normal(m0, s0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(t))
    with numpyro.plate("n", N):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


STATISTICS = {
    "group mean": lambda d: d["y"].mean(axis=1),
    "group sd": lambda d: d["y"].std(axis=1),
    "group max": lambda d: d["y"].max(axis=1),
}


def test_recovers_a_known_prior_from_four_statements():
    truth = {"m0": 3.0, "s0": 1.5, "t": 2.0}
    # the statements an expert holding this prior would make, from 4 x 10^4 simulations
    sims = bf.NumPyroModel(model, observed="y", model_kwargs=truth).sample(40_000, seed=0)
    ybar, sd = sims["y"].mean(axis=1), sims["y"].std(axis=1)
    statements = [
        Quantiles("group mean", {0.05: float(np.quantile(ybar, 0.05))}),
        Quantiles("group mean", {0.95: float(np.quantile(ybar, 0.95))}),
        Quantiles("group sd", {0.25: float(np.quantile(sd, 0.25))}),
        Quantiles("group sd", {0.9: float(np.quantile(sd, 0.9))}),
    ]
    fit = elicit(model, {"m0": 0.0, "s0": 1.0, "t": 1.0}, STATISTICS, statements,
                 positive=["s0", "t"], num_simulations=2000, steps=300, learning_rate=0.1,
                 seed=1)  # fmt: skip
    # the acceptance target: every hyperparameter within 10% (the fit matches quantiles of
    # 2000 simulations, whose Monte Carlo error is a few % here)
    for k, v in truth.items():
        assert abs(fit.hyperparameters[k] - v) < 0.1 * v, (k, fit.hyperparameters)
    table = fit.table()
    assert len(table) == 4 and np.all(np.abs(table["miss"]) < 0.05)
    assert set(fit.figure().axes[0].get_xlabel() for _ in [0]) == {"group mean"}
    m = fit.to_model(model, observed="y")
    assert isinstance(m, bf.NumPyroModel) and m.model_kwargs == fit.hyperparameters


def test_contradictory_statements_are_named():
    hyper = {"m0": 0.0, "s0": 1.0, "t": 1.0}
    with pytest.raises(ElicitationError, match="'early' .* 'late'|never lower"):
        elicit(model, hyper, STATISTICS,
               [Quantiles("group mean", {0.5: 3.0}, label="early"),
                Quantiles("group mean", {0.9: 1.0}, label="late")],
               positive=["s0", "t"], steps=5)  # fmt: skip
    # the largest value of a group is never below its mean: "the mean is above 2 in 95% of
    # groups" and "the largest value is below 1 in 95% of groups" cannot both hold
    with pytest.raises(ElicitationError, match="cannot be met together by this prior") as err:
        elicit(model, hyper, STATISTICS,
               [Quantiles("group mean", {0.05: 2.0, 0.95: 5.0}, label="mean 2-5"),
                Quantiles("group max", {0.95: 1.0}, label="max below 1")],
               positive=["s0", "t"], steps=300)  # fmt: skip
    assert "max below 1" in str(err.value)


def test_bad_input():
    hyper = {"m0": 0.0, "s0": 1.0, "t": 1.0}
    st = [Quantiles("group mean", {0.5: 1.0})]
    with pytest.raises(KeyError, match="statistics given"):
        elicit(model, hyper, {"other": STATISTICS["group sd"]}, st, steps=1)
    with pytest.raises(ValueError, match="statistic 'group mean' failed"):
        elicit(model, hyper, {"group mean": lambda d: d["z"]}, st, steps=1)
    with pytest.raises(ValueError, match="one number per simulation"):
        elicit(model, hyper, {"group mean": lambda d: d["y"]}, st, steps=1)
    with pytest.raises(KeyError, match="not hyperparameters"):
        elicit(model, hyper, STATISTICS, st, positive=["scale"], steps=1)
    with pytest.raises(ValueError, match="probabilities must lie in"):
        Quantiles("group mean", {1.5: 1.0})
    with pytest.raises(ValueError, match="starting value > 0"):
        elicit(model, {**hyper, "t": -1.0}, STATISTICS, st, positive=["t"], steps=1)
