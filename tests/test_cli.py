import json

import pytest

from amortized.cli import main
from amortized.simulators.benchmarks import SBIBM_ENV
from tests.conftest import sbibm_path

FILES = (
    "loss.png",
    "recovery.png",
    "calibration_ecdf.png",
    "coverage.png",
    "z_score_contraction.png",
    "metrics.csv",
    "history.json",
    "report.md",
    "report.json",
    "report.html",
    "model.amz",
)


DEMO_ARGS = ["demo", "--budget", "400", "--epochs", "2", "--no-progress", "--test-datasets", "60"]
C2ST_ROW = "C2ST vs. sbibm reference, observation 1 (0.5 best)"


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    """The demo without the sbibm C2ST (its classifier is most of the demo's time; the
    slow test below runs it): AMORTIZED_SBIBM is unset for this run."""
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(SBIBM_ENV, raising=False)
        assert main([*DEMO_ARGS, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_demo_scores_its_posterior_against_the_sbibm_reference(tmp_path):
    assert main([*DEMO_ARGS, "--out", str(tmp_path), "--sbibm", str(sbibm_path())]) == 0
    c2st = json.loads((tmp_path / "report.json").read_text())["configuration"][C2ST_ROW]
    # two epochs on 400 simulations: a poor posterior, but a C2ST accuracy in [0.5, 1]
    assert 0.5 <= c2st <= 1.0


def test_demo_writes_the_full_report_folder(demo_folder):
    for name in FILES:
        assert (demo_folder / name).exists(), name
    rep = json.loads((demo_folder / "report.json").read_text())
    assert rep["configuration"]["simulation budget"] == 400
    assert set(rep["ratings"]) == {"theta[0]", "theta[1]"}
    assert rep["history"]["num_epochs"] == 2 and rep["next_steps"]
    assert C2ST_ROW not in rep["configuration"]  # no reference given: skipped, said so
    assert len(json.loads((demo_folder / "history.json").read_text())["loss"]) == 2


def test_diagnose_and_report_a_saved_workflow(demo_folder, tmp_path, capsys):
    model = str(demo_folder / "model.amz")
    assert main(["diagnose", model, "--test-datasets", "40", "--num-samples", "100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (
        set(out["metrics"]) == {"theta[0]", "theta[1]"}
        and "log_gamma" in out["metrics"]["theta[0]"]
    )
    assert (
        main(
            [
                "report",
                model,
                "--out",
                str(tmp_path / "r"),
                "--test-datasets",
                "40",
                "--num-samples",
                "100",
            ]
        )
        == 0
    )
    assert (tmp_path / "r" / "report.html").exists()


def test_bad_arguments(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["demo", "--epochs", "0"])
    with pytest.raises(SystemExit):
        main(["demo", "--model", "nope"])
    with pytest.raises(SystemExit, match=r"'/nonexistent' \(the path given\) does not exist"):
        main(["demo", "--sbibm", "/nonexistent", "--budget", "100"])
    with pytest.raises(SystemExit, match="no saved workflow"):
        main(["diagnose", str(tmp_path / "missing.amz")])
    for cmd in ("demo", "diagnose", "report"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
