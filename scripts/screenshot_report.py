"""Open a report.html in headless Chromium, check that every figure is shown, screenshot it.

Usage: ``python scripts/screenshot_report.py REPORT_FOLDER [--out screenshot.png]``

Two engines, both Chromium: ``--engine playwright`` (the default; needs the ``playwright``
package and a Chromium: the system's ``chromium`` when present, else ``python -m playwright
install chromium``) and ``--engine qt`` (Qt WebEngine, ``pip install PyQt6
PyQt6-WebEngine``, whose wheels bring their own Chromium: for machines where Playwright
cannot download a browser; runs offscreen).
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


IMAGES_JS = (
    "Array.from(document.images).map(i => ({id: i.id, complete: i.complete, "
    "width: i.naturalWidth, height: i.naturalHeight}))"
)


def _playwright_images(html: Path, out: Path) -> list[dict]:
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe) if exe else p.chromium.launch()
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(html.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate(IMAGES_JS)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    return images


def _qt_images(html: Path, out: Path) -> list[dict]:
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # Chromium's sandbox needs user namespaces, which containers and root lack
    os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    from PyQt6.QtCore import QTimer, QUrl
    from PyQt6.QtWebEngineWidgets import QWebEngineView
    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["screenshot_report"])
    view = QWebEngineView()
    view.resize(1200, 900)
    result: dict = {}

    def loaded(ok: bool) -> None:
        if not ok:
            result["images"] = []
            app.quit()
            return

        def shoot() -> None:
            view.grab().save(str(out))
            app.quit()

        def got(page) -> None:
            result["images"] = (page or {}).get("images", [])
            # the whole page in one picture; the compositor paints a moment after a resize
            view.resize(1200, min(int((page or {}).get("height", 900)), 20_000))
            QTimer.singleShot(3000, shoot)

        view.page().runJavaScript(
            f"({{images: {IMAGES_JS}, height: document.documentElement.scrollHeight}})", got
        )

    view.loadFinished.connect(loaded)
    view.load(QUrl.fromLocalFile(str(html)))
    view.show()
    QTimer.singleShot(60_000, app.quit)  # a page that never finishes loading fails
    app.exec()
    return result.get("images", [])


def check(folder: Path, out: Path, engine: str = "playwright") -> dict:
    html = (folder / "report.html").resolve()
    images = (_qt_images if engine == "qt" else _playwright_images)(html, out)
    shown = {i["id"] for i in images if i["complete"] and i["width"] > 100 and i["height"] > 100}
    listed = folder / "report.json"
    expected = list(json.loads(listed.read_text())["figures"]) if listed.exists() else FIGURES
    return {
        "engine": engine,
        "images": images,
        "missing": [f for f in expected if f not in shown],
        "screenshot": str(out),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--engine", choices=["playwright", "qt"], default="playwright")
    a = ap.parse_args()
    result = check(a.folder, a.out or a.folder / "report_screenshot.png", a.engine)
    print(json.dumps(result, indent=1))
    return 1 if result["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
