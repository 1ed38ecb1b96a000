import json

import pytest

from amortized.cli import main


def test_demo_writes_report_folder(tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(["demo", "--budget", "400", "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    )
    for name in ("model.amz", "history.json", "summary.json", "loss.png", "report.md"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["coverage_90"]) == 2 and summary["budget"] == 400
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 2


def test_demo_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--epochs", "0"])
    with pytest.raises(SystemExit):
        main(["demo", "--model", "nope"])
