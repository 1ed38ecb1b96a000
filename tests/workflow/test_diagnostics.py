"""Workflow-level diagnostics: the table, the figures and the report folder."""

import base64
import json
import re

import numpy as np
import pytest

import amortized as bf
from amortized.diagnostics import DEFAULT_METRICS

from .test_workflow import make_workflow


@pytest.fixture(scope="module")
def wf():
    w = make_workflow()
    w.fit_offline(
        w.simulate(512, seed=0), epochs=3, batch_size=64, seed=1, progress=False, validation_data=64
    )
    return w


def test_table_has_canonical_rows_and_named_columns(wf):
    test = wf.simulate(80, seed=5)
    table = wf.compute_default_diagnostics(
        test,
        num_samples=200,
        seed=6,
        test_quantities={"mu_sum": lambda d: d["mu"][:, 0] + d["mu"][:, 1]},
    )
    assert list(table.index) == list(DEFAULT_METRICS)
    assert list(table.columns) == ["mu[0]", "mu[1]", "sigma", "mu_sum"]
    assert table.attrs["num_datasets"] == 80
    # the same seed gives the same numbers
    again = wf.compute_default_diagnostics(test, num_samples=200, seed=6, variable_keys="sigma")
    np.testing.assert_allclose(again["sigma"], table["sigma"])


def test_diagnostics_errors_name_the_problem(wf):
    test = wf.simulate(20, seed=5)
    with pytest.raises(KeyError, match="not inference variables"):
        wf.compute_default_diagnostics(test, num_samples=50, variable_keys="x")
    with pytest.raises(KeyError, match="true values of"):
        wf.compute_default_diagnostics({"x": test["x"]}, num_samples=50)
    with pytest.raises(TypeError, match="accepted"):
        wf.compute_default_diagnostics(test, num_draws=50)


def test_plot_default_diagnostics_keys(wf):
    figs = wf.plot_default_diagnostics(40, num_samples=100, seed=2)
    assert set(figs) == {
        "losses",
        "recovery",
        "calibration_ecdf",
        "coverage",
        "z_score_contraction",
    }


def test_report_folder_is_complete_and_self_contained(wf, tmp_path):
    out = wf.report(
        tmp_path / "rep", test_data=60, num_samples=200, seed=3, configuration={"note": "test"}
    )
    rep = json.loads((out / "report.json").read_text())
    assert rep["schema_version"] == 1 and rep["configuration"]["note"] == "test"
    assert set(rep["figures"]) == {
        "loss",
        "recovery",
        "calibration_ecdf",
        "coverage",
        "z_score_contraction",
    }
    for v in rep["ratings"].values():
        assert v["calibration"] in ("excellent", "fair", "poor")
        assert v["recovery"] in ("excellent", "good", "fair", "poor")
    html = (out / "report.html").read_text()
    images = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert len(images) == 5
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    md = (out / "report.md").read_text()
    for name in rep["figures"]:
        assert f"({name}.png)" in md and (out / f"{name}.png").stat().st_size > 1000
    assert (out / "metrics.csv").read_text().splitlines()[0] == "metric,mu[0],mu[1],sigma"


def test_saved_metadata_round_trip(wf, tmp_path):
    wf.save(tmp_path / "m.amz", metadata={"model": "toy"})
    assert bf.load(tmp_path / "m.amz").metadata == {"model": "toy"}
    with pytest.raises(TypeError, match="JSON"):
        wf.save(tmp_path / "n.amz", metadata={"f": object()})
