"""The HTML report of the `ci` configuration in headless Chromium (Debian's chromium and chromium-driver, driven
by Selenium): it opens on Table 1 with the method names, every figure it references loads, and a screenshot of
the landing page is kept (``results/test-report/landing.png``). Run by ``make test-report`` (which installs the
browser), skipped with the reason where the browser is absent."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.workflow.helpers import ROOT, snakemake, write_config

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTEFACTS = ROOT / "results" / "test-report"

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are "
                                "not installed (`make test-report` installs them)")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The ci configuration run (every target of `all`), then its report."""
    workdir = tmp_path_factory.mktemp("report")
    config, path = write_config(workdir)
    snakemake(workdir, path)
    snakemake(workdir, path, "--report", str(workdir / "report.html"))
    return workdir / "report.html", config


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError("timed out waiting for the report page")


def _landing(browser, path: Path) -> str:
    browser.get(path.as_uri())
    return _wait(browser, lambda: "Every table and figure" in browser.find_element("tag name", "body").text
                 and browser.find_element("tag name", "body").text)


def test_the_report_opens_on_table_1(report, browser):
    path, config = report
    text = _landing(browser, path)
    browser.execute_script("window.scrollTo(0, 0)")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / "landing.png"))
    assert f"WAM Bench: {config['name']}" in text and "Table 1 (protocol" in text  # the landing page, not the DAG
    # the whole landing page is on screen: the report centres its content, so a page taller than the window
    # would lose its top (title and Table 1's caption) above the viewport
    top = browser.execute_script("return document.querySelector('h1.title, .document h1').getBoundingClientRect().top")
    assert top >= 0
    for spec in config["methods"].values():
        assert spec["label"] in text, spec["label"]
    for column in ("Images ins.", "Volumes faith."):
        assert column in text
    assert (ARTEFACTS / "landing.png").stat().st_size > 10_000


def test_every_figure_of_the_report_loads(report, browser):
    """Every figure linked from the landing page is shown as the report's own view button shows it (an <img>
    whose source is the embedded file): each must decode (no broken image)."""
    path, config = report
    _landing(browser, path)
    hrefs = [a.get_attribute("href") for a in browser.find_elements("css selector", "a.reference")]
    figures = [h.split("'")[1] for h in hrefs if "showResultInfo" in h and h.split("'")[1].endswith(".png")]
    n_pairs = sum(len(d["models"]) for d in config["datasets"].values())
    assert len(figures) >= 3 * n_pairs  # examples, curves and scales of every (dataset, model)
    for figure in figures:
        browser.execute_script(
            "app.setView({content: 'img', contentPath: results[arguments[0]].data_uri, resultPath: arguments[0]})",
            figure)
        _wait(browser, lambda figure=figure: browser.execute_script(
            "const i = Array.from(document.images).filter(i => i.src === results[arguments[0]].data_uri);"
            "return i.length > 0 && i.every(x => x.complete)", figure))
        width = browser.execute_script(
            "return Array.from(document.images).filter(i => i.src === results[arguments[0]].data_uri)"
            ".map(i => i.naturalWidth)", figure)
        assert width and min(width) > 100, (figure, width)
