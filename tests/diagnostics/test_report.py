"""The report folder built from arrays, and its HTML opened in headless Chromium where one
is installed (``pip install playwright`` and a ``chromium``; skipped otherwise)."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from amortized.diagnostics import build_report, default_figures, diagnose, write_report
from amortized.diagnostics.report import FIGURES


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from .conftest import conjugate

    draws, theta = conjugate(200, 300, seed=4)
    history = {"loss": [2.0, 1.5, 1.2, 1.1, 1.05, 1.04], "val_loss": [2.1, 1.6, 1.3, 1.2, 1.1, 1.1]}
    dx = diagnose(draws, theta, history)
    figs = default_figures(draws, theta, history)
    figs["loss"] = figs.pop("losses")
    rep = build_report(
        dx.table,
        dx.ratings,
        history,
        dx.history_check,
        dx.next_steps,
        {"model": "conjugate normal"},
    )
    return write_report(tmp_path_factory.mktemp("r") / "report", rep, figs, dx.table, history)


def test_files_and_schema(folder):
    rep = json.loads((folder / "report.json").read_text())
    assert set(rep) >= {
        "schema_version",
        "configuration",
        "metrics",
        "ratings",
        "history",
        "next_steps",
        "figures",
        "thresholds",
    }
    assert rep["ratings"]["theta[0]"]["calibration"] == "excellent"  # the exact posterior
    assert rep["history"]["overfitting"] is False
    for name in FIGURES:
        assert (folder / f"{name}.png").exists()


def test_missing_figure_raises(folder):
    with pytest.raises(KeyError, match="coverage"):
        write_report(folder, {}, {"loss": None}, None, None)


def _has_qt_webengine() -> bool:
    try:
        return importlib.util.find_spec("PyQt6.QtWebEngineWidgets") is not None
    except ModuleNotFoundError:
        return False


ENGINES = [
    pytest.param(
        "playwright",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("playwright") is None
            or not (shutil.which("chromium") or shutil.which("chromium-browser")),
            reason="needs playwright and a chromium",
        ),
    ),
    pytest.param(
        "qt",
        marks=pytest.mark.skipif(
            not _has_qt_webengine(), reason="needs PyQt6-WebEngine (its own Chromium)"
        ),
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_html_shows_every_figure_in_chromium(folder, engine):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from screenshot_report import check

    result = check(folder, folder / "screenshot.png", engine)
    assert result["missing"] == []
    assert (folder / "screenshot.png").stat().st_size > 50_000
