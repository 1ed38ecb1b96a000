import json

import pytest

from amortized.cli import main

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


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    argv = [
        "demo",
        "--budget",
        "400",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--no-progress",
        "--test-datasets",
        "60",
    ]
    assert main(argv) == 0
    return out


def test_demo_writes_the_full_report_folder(demo_folder):
    for name in FILES:
        assert (demo_folder / name).exists(), name
    rep = json.loads((demo_folder / "report.json").read_text())
    assert rep["configuration"]["simulation budget"] == 400
    assert set(rep["ratings"]) == {"theta[0]", "theta[1]"}
    assert rep["history"]["num_epochs"] == 2 and rep["next_steps"]
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
