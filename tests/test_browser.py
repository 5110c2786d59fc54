"""A real browser (headless Chromium) opens a run's report and the documentation's pages: every
figure loads and the page draws (a smoke test; skipped where Chromium is not installed)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlmol.cli import main

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("browser", ROOT / "tools" / "browser.py")
browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser)

pytestmark = [pytest.mark.slow, pytest.mark.smoke,
              pytest.mark.skipif(browser.chromium() is None, reason="needs Chromium (apt install chromium)")]


def _drawn(png: Path) -> float:
    """The fraction of the screenshot's pixels that are not white (a blank page gives 0)."""
    import matplotlib.image

    image = matplotlib.image.imread(png)[..., :3]
    return float((image < 0.95).any(-1).mean())


def test_a_report_opens_in_a_browser_with_every_figure(tmp_path):
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump({"system": {"name": "double-well"}, "data": {"n": 1000},
                                      "flow": {"blocks": 2, "hidden": [16, 16]}, "recipe": {"steps": 60}}))
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--n", "5000"]) == 0
    assert main(["report", str(run), "--n", "5000"]) == 0
    page = run / "report.html"
    loaded, total = browser.loaded_images(page)
    assert total == page.read_text().count("<img") >= 4 and loaded == total
    png = browser.screenshot(page, tmp_path / "report.png")
    assert 0.05 < _drawn(png) < 0.9  # figures and text drawn, not a blank or a black page


def test_the_documentation_front_page_opens_with_every_image(tmp_path):
    if shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists():
        pytest.skip("needs the docs extra (pip install -e '.[docs]')")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
                   cwd=ROOT, check=True, timeout=300)
    for page in (site / "index.html", site / "getting-started" / "index.html"):
        loaded, total = browser.loaded_images(page)
        assert loaded == total
        assert _drawn(browser.screenshot(page, tmp_path / "page.png")) > 0.01
    assert total >= 1  # the getting-started page shows the report's screenshot
    assert (site / "getting-started" / "index.html").is_file() and (site / "api" / "systems" / "index.html").is_file()
