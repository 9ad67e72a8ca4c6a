"""The documentation: a short front page, a site that builds strictly and shows its navigation and
figures, and reference pages that follow the schema and the command line."""

import re
import subprocess
import sys
import time

import pytest

from conftest import REPO, headless_browser

DOCS = REPO / "docs"


def _generator():
    import runpy

    return runpy.run_path(str(DOCS / "generate_reference.py"))


def test_the_reference_pages_follow_the_schema_and_the_command_line():
    done = subprocess.run([sys.executable, str(DOCS / "generate_reference.py"), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr or done.stdout


def test_every_setting_has_a_description():
    assert _generator()["undescribed"]() == []


def test_the_readme_is_a_front_page_whose_links_lead_somewhere():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if "://" not in target:
            assert (REPO / target).exists(), target
    # the two commands, as .ci/run runs the second
    assert 'pip install -e . && snakemake --cores all' in text
    assert 'pip install -e ".[test]" && pytest' in (REPO / ".ci" / "run").read_text()


def test_every_picture_the_docs_show_is_a_png_of_the_pipeline():
    pictures = set()
    for page in [*DOCS.rglob("*.md"), REPO / "README.md"]:
        for target in re.findall(r"!\[[^]]*\]\(([^)]+)\)", page.read_text()):
            path = (page.parent / target).resolve()
            assert path.exists(), f"{page.name}: {target}"
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000, target
            pictures.add(path.name)
    assert {"cropland.png", "probability.png", "uncertainty.png", "train_curves.png", "confusion.png"} <= pictures


def test_the_site_builds_strictly_and_shows_its_navigation_and_a_figure(tmp_path):
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=REPO,
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    assert (site / "results" / "accuracy" / "index.html").exists()
    from selenium.webdriver.common.by import By

    browser = headless_browser()
    try:
        browser.get((site / "index.html").as_uri())
        time.sleep(1.0)
        nav = [a.get_attribute("textContent").strip() for a in browser.find_elements(By.CSS_SELECTOR, "nav.md-nav a")]
        widths = [int(img.get_attribute("naturalWidth") or 0) for img in browser.find_elements(By.TAG_NAME, "img")]
        browser.save_screenshot(str(tmp_path / "site.png"))
    finally:
        browser.quit()
    for page in ("Install and run the demo", "Map your own area", "Accuracy on every area", "Configuration"):
        assert any(page in text for text in nav), (page, nav)
    assert max(widths, default=0) > 200  # the map is shown, not a broken image
    assert (tmp_path / "site.png").stat().st_size > 20000
