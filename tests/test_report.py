"""The HTML report: self-contained, every section present, and it renders in real headless Chromium with no
console errors and every image decoded (a screenshot is saved)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def report(spark, synth_ds, ingested, validated_model, tmp_path_factory):
    """The report of the shared validated model (tests/conftest.py: thresholds, a learning curve with validation)."""
    from cxrzoo.report import write_report

    _, model_dir, _ = validated_model
    root = tmp_path_factory.mktemp("report")
    return write_report(spark, str(model_dir), ingested, str(root / "report.html"), boxes=str(synth_ds.bbox_csv),
                        image_side=128, bootstrap=50)


def test_the_report_is_one_self_contained_file(report):
    page = report.read_text()
    for section in ("Dataset", "AUC with 95 % bootstrap confidence intervals", "ROC curves", "Precision-recall curves",
                    "Calibration", "Operating thresholds", "Learning curves", "Localisation", "Heatmap gallery"):
        assert f"<h2>{section}</h2>" in page, section
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)  # nothing fetched from a network
    assert len(re.findall(r'src="data:image/(png|jpeg);base64,', page)) >= 5
    assert "Youden" in page or "youden" in page  # the thresholds table is filled
    assert "pointing" in page and "CheXNet" in page


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    return found


def test_the_report_renders_in_headless_chromium(report, tmp_path):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    shot = Path(os.environ.get("CXRZOO_SCREENSHOT_DIR", tmp_path)) / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.goto(report.resolve().as_uri(), wait_until="load")
            images = page.evaluate("""() => Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete &&
                                      i.naturalWidth > 0 && i.naturalHeight > 0}))""")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert len(images) >= 5 and all(i["ok"] for i in images), [i["alt"] for i in images if not i["ok"]]
    assert shot.stat().st_size > 10_000
