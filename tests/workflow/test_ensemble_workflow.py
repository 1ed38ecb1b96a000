"""EnsembleWorkflow: members trained on the same simulations, their mixture and their
disagreement in the diagnostics, the report and the amortized Bayesian workflow."""

import json

import numpy as np
import pandas as pd
import pytest

import amortized as bf
from amortized.diagnostics.ensemble_disagreement import Disagreement, with_disagreement
from amortized.diagnostics.ood import summary_reference
from amortized.workflow.abw_steps import amortized_step


def _prior():
    return {"theta": np.random.normal()}


def _lik(theta):
    return {"x": theta + 0.5 * np.random.normal()}


def _shifted_lik(theta):
    return {"x": theta + 1.5 + 0.5 * np.random.normal()}


def _small():
    return bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [32, 32]})


@pytest.fixture(scope="module")
def trained():
    sim = bf.make_simulator([_prior, _lik])
    wf = bf.EnsembleWorkflow(
        simulator=sim,
        inference_networks={"a": _small(), "b": _small(), "c": _small()},
        inference_variables="theta",
        inference_conditions="x",
    )
    histories = wf.fit_offline(sim.sample(2000, seed=0), epochs=15, batch_size=128, seed=1,
                               progress=False, early_stopping=False)  # fmt: skip
    return wf, histories


def test_members_train_on_the_same_data_with_their_own_seeds(trained):
    wf, histories = trained
    assert list(histories) == ["a", "b", "c"] == list(wf.histories)
    assert all(len(h["loss"]) == 15 for h in histories.values())
    a, b = (np.asarray(m.nets.inference.layers[0].net_a.layers[0].weight)
            for m in wf.approximator.members[:2])  # fmt: skip
    assert not np.allclose(a, b)
    with pytest.raises(AttributeError, match="histories"):
        wf.history  # noqa: B018
    with pytest.raises(AttributeError, match="inference_networks"):
        wf.inference_network  # noqa: B018


def test_online_members_share_simulations():
    # one data_seed, different seeds: the same simulate(n, seed) calls, epoch by epoch
    calls = {0: [], 1: []}
    sim = bf.make_simulator([_prior, _lik])

    def recorder(i):
        def simulate(n, seed):
            calls[i].append(seed)
            return sim.sample(n, seed=seed)

        return simulate

    adapter = bf.Adapter.create_default("theta", "x")
    for i in (0, 1):
        m = bf.ContinuousApproximator(inference_network=_small(), adapter=adapter)
        m.fit(simulate=recorder(i), num_batches_per_epoch=2, epochs=3, batch_size=32,
              seed=10 + i, data_seed=99, validation_data=sim.sample(64, seed=5),
              progress=False)  # fmt: skip
    assert calls[0] == calls[1] and len(set(calls[0])) == 3  # 3 epochs, fresh data each


def test_diagnostics_table_has_the_disagreement_rows(trained):
    wf, _ = trained
    table = wf.compute_default_diagnostics(test_data=100, num_samples=500, seed=2)
    assert {"ensemble_disagreement", "ensemble_flagged"} <= set(table.index)
    # three members of one conjugate-normal posterior after 15 epochs agree to well within
    # the 0.3 threshold (measured ~0.05); a member off by 0.3 sd would push it past 0.15
    assert table.loc["ensemble_disagreement", "theta"] < 0.15
    assert table.attrs["ensemble_flagged_datasets"] == [
        i for i in range(100) if i in table.attrs["ensemble_flagged_datasets"]
    ]
    # the mixture's own calibration is the default diagnostics': ranks are uniform for
    # a calibrated posterior, so log gamma >= 0 (inside the band) with 95% probability
    assert table.loc["log_gamma", "theta"] > -1.0


def test_with_disagreement_rows_are_medians_and_shares():
    table = pd.DataFrame({"a": [0.1], "b": [0.2], "q": [0.3]}, index=["nrmse"])
    table.attrs["num_datasets"] = 4
    d = Disagreement(
        disagreement=np.array([[0.1, 0.5], [0.2, 0.0], [0.4, 0.0], [0.0, 0.1]]),
        log_sd_spread=np.array([[0.0, 0.0], [0.0, 0.35], [0.0, 0.0], [0.0, 0.0]]),
        flagged=np.array([True, True, True, False]),
        threshold=0.3,
    )
    out = with_disagreement(table, d)
    np.testing.assert_allclose(out.loc["ensemble_disagreement", ["a", "b"]], [0.15, 0.05])
    np.testing.assert_allclose(out.loc["ensemble_flagged", ["a", "b"]], [0.25, 0.5])
    assert np.isnan(out.loc["ensemble_flagged", "q"])  # a test quantity: not computed
    assert out.attrs["ensemble_flagged_datasets"] == [0, 1, 2]
    assert "ensemble_flagged" not in table.index  # a new table


def test_report_has_the_disagreement_figure_and_metrics(trained, tmp_path):
    wf, _ = trained
    folder = wf.report(tmp_path / "rep", test_data=60, num_samples=300, seed=3)
    rep = json.loads((folder / "report.json").read_text())
    assert (folder / "ensemble_disagreement.png").stat().st_size > 0
    assert (folder / "loss.png").stat().st_size > 0
    fig = rep["figures"]["ensemble_disagreement"]
    assert "agree" in fig["assessment"] or "flagged" in fig["assessment"]
    assert "ensemble_disagreement" in rep["metrics"]
    assert rep["metric_descriptions"]["ensemble_flagged"]
    assert rep["configuration"]["ensemble members"] == 3
    html = (folder / "report.html").read_text()
    assert "id='ensemble_disagreement'" in html


def test_report_flags_members_that_disagree(trained, tmp_path):
    # a member trained on a shifted simulator disagrees with the others everywhere
    wf, _ = trained
    shifted = bf.make_simulator(
        [_prior, lambda theta: {"x": theta + 1.5 + 0.5 * np.random.normal()}]
    )
    odd = bf.BasicWorkflow(simulator=shifted, inference_network=_small(),
                           inference_variables="theta", inference_conditions="x")  # fmt: skip
    odd.fit_offline(shifted.sample(2000, seed=7), epochs=15, batch_size=128, seed=8,
                    progress=False, early_stopping=False)  # fmt: skip
    bad = bf.EnsembleWorkflow.__new__(bf.EnsembleWorkflow)
    bad.__dict__.update(wf.__dict__)
    bad.approximator = bf.approximators.EnsembleApproximator(
        [*wf.approximator.members[:2], odd.approximator]
    )
    folder = bad.report(tmp_path / "bad", test_data=60, num_samples=300, seed=3)
    rep = json.loads((folder / "report.json").read_text())
    # the odd member's mean is off by 1.5 / 1.25 * 0.8 ~ 1 = 2.2 posterior sd (0.45):
    # the spread of three means, one off by 2.2 sd, is ~1.3 sd, far above 0.3
    assert rep["metrics"]["ensemble_flagged"]["theta"] > 0.9
    assert "flagged" in rep["figures"]["ensemble_disagreement"]["assessment"]
    assert "disagree" in rep["next_steps"][0]


def test_save_load_round_trip_in_a_fresh_process(trained, tmp_path):
    import subprocess
    import sys

    wf, _ = trained
    path = wf.save(tmp_path / "ens.amz", metadata={"run": 1})
    cond = {"x": np.array([[0.4], [1.2]])}
    code = (
        "import sys, json, numpy as np, amortized as bf\n"
        f"wf = bf.load({str(path)!r})\n"
        "cond = {'x': np.array([[0.4], [1.2]])}\n"
        "np.save(sys.argv[1], wf.sample(num_samples=200, conditions=cond, seed=4)['theta'])\n"
        "d = wf.disagreement(conditions=cond, num_samples=200, seed=5)\n"
        "json.dump({'type': type(wf).__name__, 'names': wf.member_names, 'meta': wf.metadata,"
        " 'loss': wf.histories['a']['loss'], 'dis': d.disagreement.tolist()},"
        " open(sys.argv[2], 'w'))\n"
    )
    out, info = tmp_path / "theta.npy", tmp_path / "info.json"
    subprocess.run([sys.executable, "-c", code, str(out), str(info)], check=True, timeout=300)
    got = json.loads(info.read_text())
    assert got["type"] == "EnsembleWorkflow" and got["names"] == ["a", "b", "c"]
    assert got["meta"] == {"run": 1} and got["loss"] == wf.histories["a"]["loss"]
    np.testing.assert_array_equal(
        np.load(out), wf.sample(num_samples=200, conditions=cond, seed=4)["theta"]
    )
    here = wf.disagreement(conditions=cond, num_samples=200, seed=5).disagreement
    np.testing.assert_allclose(got["dis"], here, rtol=1e-6)


def test_amortized_step_holds_back_datasets_the_members_disagree_on(trained):
    wf, _ = trained
    ens = wf.approximator
    data = {"x": np.linspace(-2.0, 2.0, 6)[:, None]}
    ref = summary_reference(ens.embed(wf.simulate(500, seed=9)))
    step = amortized_step(ens, None, data, ref, num_samples=300, with_log_q=False, seed=5)
    _, dis = ens.sample_and_disagreement(num_samples=300, conditions=data, seed=5)
    expected = np.maximum(dis.disagreement, dis.log_sd_spread).max(axis=1)
    np.testing.assert_allclose(step.disagreement, expected)
    np.testing.assert_array_equal(step.disagree, dis.flagged)
    forced = type(step)(**{**step.__dict__, "disagree": np.ones(6, bool)})
    assert not forced.accepted.any()  # flagged datasets are never accepted at step 1
    np.testing.assert_array_equal(
        step.draws["theta"], ens.sample(num_samples=300, conditions=data, seed=5)["theta"]
    )


def test_bad_input():
    kw = dict(inference_variables="theta", inference_conditions="x")
    with pytest.raises(ValueError, match="num_members must be an integer >= 2"):
        bf.EnsembleWorkflow(num_members=1, **kw)
    with pytest.raises(ValueError, match="repeats one network"):
        bf.EnsembleWorkflow(inference_networks=[_small(), _small()], num_members=3, **kw)
    with pytest.raises(ValueError, match="at least 2"):
        bf.EnsembleWorkflow(inference_networks={"a": _small()}, **kw)
    with pytest.raises(TypeError, match="posterior samplers"):
        bf.EnsembleWorkflow(inference_networks=[_small(), bf.networks.PointNetwork("mean")], **kw)
    with pytest.raises(ValueError, match="inference_network name must be one of"):
        bf.EnsembleWorkflow(inference_networks=["coupling_flow", "coupling"], **kw)
    with pytest.raises(TypeError, match="accepted"):
        bf.EnsembleWorkflow(inference_network=_small(), **kw)
    wf = bf.EnsembleWorkflow(**kw)
    assert len(wf.approximator) == 4  # DEFAULT_MEMBERS of the default network
    with pytest.raises(TypeError, match="point"):
        wf.estimate({"x": np.zeros((1, 1))})


def _weak_prior():
    return {"theta": np.random.normal(size=2), "quality": np.random.uniform()}


def _weak_lik(theta, quality):
    # theta[1] enters through its square and, with weight s, its sign: with s = 2 the sign
    # is identified; with s = 0.15 (quality < 0.5) it is nearly not (two modes whose
    # weights hinge on a weak signal)
    s = 0.15 if quality < 0.5 else 2.0
    x = np.array([theta[0], theta[1] ** 2, s * theta[1]]) + 0.1 * np.random.normal(size=3)
    return {"x": np.concatenate([x, [quality]])}


@pytest.mark.slow
def test_disagreement_is_high_where_a_parameter_is_not_identified(tmp_path):
    sim = bf.make_simulator([_weak_prior, _weak_lik])
    wf = bf.EnsembleWorkflow(simulator=sim, inference_variables="theta", inference_conditions="x")
    wf.fit_offline(sim.sample(10_000, seed=1), batch_size=128, seed=2, progress=False)
    test = sim.sample(400, seed=3)
    d = wf.disagreement(conditions={"x": test["x"]}, num_samples=2000, seed=4)
    weak = np.ravel(test["quality"]) < 0.5
    # measured (defaults, 4 members, 10^4 simulations): 35% of the weakly identified
    # datasets flagged, 4% of the others; median disagreement on theta[1] 0.16 vs 0.10.
    # Members that agreed equally everywhere would give equal shares (+- 0.05 binomial sd
    # at 200 datasets each)
    assert d.flagged[weak].mean() >= 0.2
    assert d.flagged[weak].mean() >= 3 * d.flagged[~weak].mean()
    assert np.median(d.disagreement[weak, 1]) > np.median(d.disagreement[~weak, 1])
    folder = wf.report(tmp_path / "rep", test_data=test, seed=5)
    rep = json.loads((folder / "report.json").read_text())
    assert "flagged" in rep["figures"]["ensemble_disagreement"]["assessment"]
    assert rep["metrics"]["ensemble_flagged"]["theta[1]"] > 0.05
