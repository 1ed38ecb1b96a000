"""Open a report.html in headless Chromium, check that every figure is shown, screenshot it.

Usage: ``python scripts/screenshot_report.py REPORT_FOLDER [--out screenshot.png]``

Needs the ``playwright`` Python package and a Chromium (``pip install playwright``; the
system's ``chromium`` is used when present, else ``python -m playwright install chromium``).
Exits non-zero when an image fails to load or a report figure is missing. The figures
expected are those the folder's ``report.json`` lists (a posterior's, a model comparison's,
a sensitivity or a multiverse report), else the posterior report's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

FIGURES = ("loss", "recovery", "calibration_ecdf", "coverage", "z_score_contraction")


def check(folder: Path, out: Path) -> dict:
    from playwright.sync_api import sync_playwright

    html = (folder / "report.html").resolve()
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe) if exe else p.chromium.launch()
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(html.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate(
            "Array.from(document.images).map(i => ({id: i.id, complete: i.complete, "
            "width: i.naturalWidth, height: i.naturalHeight}))"
        )
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    shown = {i["id"] for i in images if i["complete"] and i["width"] > 100 and i["height"] > 100}
    listed = folder / "report.json"
    expected = list(json.loads(listed.read_text())["figures"]) if listed.exists() else FIGURES
    return {
        "images": images,
        "missing": [f for f in expected if f not in shown],
        "screenshot": str(out),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    result = check(a.folder, a.out or a.folder / "report_screenshot.png")
    print(json.dumps(result, indent=1))
    return 1 if result["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
