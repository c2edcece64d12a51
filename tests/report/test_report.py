"""The HTML report of a small run with the default configuration's methods, modalities and experiments
(:func:`report_config`), in headless Chromium (Debian's chromium and chromium-driver, driven by Selenium), at
1366x768 and 1920x1080. Layout, not only text, is asserted from bounding boxes:

- the landing page opens on Table 1: the title, the caption and Table 1's header row start at or below the top of
  the window (``top >= 0``), every row of Table 1 can be scrolled fully into view, and no SVG or canvas (the
  workflow graph) intersects the table;
- the links of the landing page read differently from one another, Table 1 first;
- tables are HTML pages (the table and its Markdown caption; the offline note on Table 1); the Tables category
  lists table1 first;
- each audio example is a page with a playable ``<audio>`` beside each spectrogram;
- every figure of the report decodes.

Screenshots and the measured boxes are kept under ``results/test-report/``. Run by ``make test-report`` (which
installs the browser); skipped with the reason where the browser is absent."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.workflow.helpers import ROOT, snakemake, write_config

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTEFACTS = ROOT / "results" / "test-report"
WINDOWS = [(1366, 768), (1920, 1080)]

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are "
                                "not installed (`make test-report` installs them)")


def report_config(workdir: Path) -> tuple[dict, Path]:
    """The default configuration's methods, modalities and experiments at tiny sizes: ``ci.yaml`` with the default's
    ``methods`` (their labels and kinds; fewer samples and steps), data sets (a few inputs, the first model of each)
    and wavelets, and each experiment of ``default.yaml`` (the sanity checks, the extended metrics and the
    architectures included) shrunk to a few inputs and steps. Table 1 then has the
    default's nine rows and nine columns."""
    default = yaml.safe_load((ROOT / "workflow" / "config" / "default.yaml").read_text())
    methods = default["methods"]
    fewer = {"n_samples": 2, "n_steps": 3}
    for spec in methods.values():
        spec["options"] = {k: fewer.get(k, v) for k, v in spec.get("options", {}).items()}
    datasets = {name: {**spec, "n_inputs": 4 if spec["modality"] == "audio" else 2, "models": spec["models"][:1]}
                for name, spec in default["datasets"].items()}
    perturbation = {**default["perturbation"], "alphas": [0, 20], "steps": 3, "n_images": 1, "n_examples": 1,
                    "seeds": [0]}
    separation = {**default["audio_separation"], "keeps": [0.1, 0.5], "n_samples": 2, "n_examples": 1,
                  "example_keep": 0.1, "griffin_lim_iters": 2}
    robustness = {**default["robustness"], "n_inputs": 8, "seeds": [0], "batch_size": 64,
                  "attack": {**default["robustness"]["attack"], "steps": 1},
                  "training": {**default["robustness"]["training"], "epochs": 1, "steps": 1, "replay": 1, "width": 4},
                  "models": {k: v for k, v in default["robustness"]["models"].items() if k in ("erm", "adv")}}
    sanity = {**default["sanity"], "n_inputs": 1, "max_blocks": 2, "data_epochs": 1}
    extended = {**default["metrics_extended"], "n_inputs": 1, "road": {**default["metrics_extended"]["road"],
                                                                       "percentages": [50]},
                "stability": {**default["metrics_extended"]["stability"], "samples": 1}}
    architectures = {**default["architectures"], "n_inputs": 2, "methods": ["saliency", "wam_ig"],
                     "training": {**default["architectures"]["training"], "epochs": 1},
                     "models": {k: v for k, v in default["architectures"]["models"].items() if k in ("resnet", "vit")}}
    return write_config(workdir, methods=methods, datasets=datasets, seeds=[42], perturbation=perturbation,
                        audio_separation=separation, robustness=robustness, wavelet=default["wavelet"], sanity=sanity,
                        metrics_extended=extended, architectures=architectures)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The run, then its report: every target of `all` but the speed suite (its timings take more than the rest
    of this run) and the timings table that waits for it; their pages are table pages like the others."""
    workdir = tmp_path_factory.mktemp("report")
    config, path = report_config(workdir)
    snakemake(workdir, path, "--omit-from", "speed", timeout=3600)
    snakemake(workdir, path, "--omit-from", "speed", "--report", str(workdir / "report.html"))
    return workdir / "report.html", config


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1366,768"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield browser
    browser.quit()


def _wait(condition, timeout: float = 60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError("timed out waiting for the report page")


def _viewport(browser, width: int, height: int) -> tuple[int, int]:
    """Size the window as a maximised one on a ``width`` x ``height`` screen; the page's viewport (the window
    less the browser's own bars)."""
    browser.set_window_size(width, height)
    return tuple(browser.execute_script("return [window.innerWidth, window.innerHeight]"))


def _open(browser, path: Path, size: tuple[int, int]) -> tuple[int, int]:
    viewport = _viewport(browser, *size)
    browser.get(path.as_uri())
    _wait(lambda: browser.execute_script(
        "const t = document.querySelector('#app table.table1'); return t && t.querySelectorAll('tbody tr').length"))
    time.sleep(1.0)  # the workflow graph (vega) draws after the text
    return viewport


BOXES = """
const box = e => { const r = e.getBoundingClientRect();
                   return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
const table = document.querySelector('#app table.table1');
const graphics = Array.from(document.querySelectorAll('#app svg, #app canvas')).map(box)
  .filter(b => b.right - b.left > 0 && b.bottom - b.top > 0);
return {title: box(document.querySelector('#app h1.title')),
        caption: box(document.querySelector('#app h1.title').nextElementSibling),
        header: box(table.querySelector('thead tr')), table: box(table),
        rows: table.querySelectorAll('tbody tr').length, graphics: graphics};
"""


def _intersects(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


@pytest.mark.parametrize("size", WINDOWS, ids=[f"{w}x{h}" for w, h in WINDOWS])
def test_the_landing_page_opens_on_table_1(report, driver, size):
    path, config = report
    viewport = _open(driver, path, size)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTEFACTS / f"landing_{size[0]}x{size[1]}.png"))
    boxes = driver.execute_script(BOXES)
    text = driver.find_element("css selector", "#app table.table1").text
    # every row of Table 1 can be scrolled fully into view (the pane scrolls from its top)
    rows = []
    for i in range(boxes["rows"]):
        rows.append(driver.execute_script(
            "const r = document.querySelectorAll('#app table.table1 tbody tr')[arguments[0]];"
            "r.scrollIntoView({block: 'nearest', inline: 'start'}); const b = r.getBoundingClientRect();"
            "return {top: b.top, bottom: b.bottom, left: b.left}", i))
    boxes.update(viewport=viewport, scrolled_rows=rows)
    (ARTEFACTS / f"landing_{size[0]}x{size[1]}.json").write_text(json.dumps(boxes, indent=1))

    assert boxes["title"]["top"] >= 0, boxes["title"]
    assert boxes["caption"]["top"] >= 0, boxes["caption"]
    assert boxes["header"]["top"] >= 0, boxes["header"]
    assert boxes["rows"] == len(config["methods"])
    for row in rows:
        assert 0 <= row["top"] and row["bottom"] <= viewport[1] + 0.5 and row["left"] >= 0, row
    assert boxes["graphics"], "the workflow graph (an SVG or canvas) is drawn"
    assert [g for g in boxes["graphics"] if _intersects(g, boxes["table"])] == []
    for spec in config["methods"].values():
        assert spec["label"] in text, spec["label"]
    for column in ("Images ins.", "Audio del.", "Volumes faith."):
        assert column in text
    body = driver.find_element("css selector", "#app").text
    assert "Offline stand-ins: not comparable with the published values" in body


def test_the_landing_links_are_distinct_table_1_first(report, driver):
    path, _ = report
    _open(driver, path, WINDOWS[0])
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('#app li a.reference')).filter(a => a.href.includes"
        "('showResultInfo')).map(a => a.textContent)")  # the list of every table and figure
    assert links and links[0] == "table1", links[:3]
    assert len(links) == len(set(links)), sorted(links)
    assert {"robustness_scales (table)", "robustness_scales (figure)", "randomisation (table)", "road (table)",
            "metric_agreement (table)", "architectures (table)", "architectures (figure)"} <= set(links), sorted(links)


def _result(driver, suffix: str) -> str:
    paths = driver.execute_script("return Object.keys(results)")
    return next(p for p in paths if p.endswith(suffix))


def _show_page(driver, result: str, shot: str) -> None:
    """Show ``result`` (an HTML page) as the report's own view button shows it, keep a screenshot, and switch into
    its frame."""
    driver.execute_script(
        "app.setView({content: 'html', contentPath: results[arguments[0]].data_uri, resultPath: arguments[0]})",
        result)
    frame = _wait(lambda: driver.find_elements("css selector", "#app iframe"))[0]
    time.sleep(0.5)
    driver.save_screenshot(str(ARTEFACTS / shot))
    driver.switch_to.frame(frame)


def test_tables_are_pages_with_their_captions_table_1_first(report, driver):
    path, _ = report
    _open(driver, path, WINDOWS[1])
    _show_page(driver, _result(driver, "report/tables/table1.html"), "table1_1920x1080.png")
    try:
        assert _wait(lambda: driver.find_elements("css selector", "table thead th"))
        text = driver.find_element("tag name", "body").text
        assert "Table 1 under the" in text  # the Markdown caption
        assert "Offline stand-ins: not comparable with the published values" in text
    finally:
        driver.switch_to.default_content()
    driver.execute_script("app.showCategory('Tables')")
    first = _wait(lambda: driver.find_elements("css selector", "nav table tbody tr"))[0].text
    assert "table1" in first and "table1_" not in first, first


def test_audio_examples_have_a_player_beside_each_spectrogram(report, driver):
    path, _ = report
    _open(driver, path, WINDOWS[1])
    _show_page(driver, _result(driver, "report/audio_separation_clip0.html"), "audio_clip0_1920x1080.png")
    try:
        rows = _wait(lambda: driver.find_elements("css selector", "table.audio tr"))
        players = driver.find_elements("css selector", "table.audio audio")
        assert len(rows) >= 8 and len(players) == len(rows)
        durations = _wait(lambda: [d for d in driver.execute_script(
            "return Array.from(document.querySelectorAll('audio')).map(a => a.duration)") if d > 0])
        assert len(durations) == len(players) and min(durations) > 1.0, durations
        for row in rows:  # the spectrogram and its player side by side
            image, audio = row.find_element("tag name", "img"), row.find_element("tag name", "audio")
            assert audio.rect["x"] > image.rect["x"] + image.rect["width"] - 1
    finally:
        driver.switch_to.default_content()


def test_every_figure_of_the_report_loads(report, driver):
    """Every PNG of the report is shown as the report's own view button shows it (an <img> whose source is the
    embedded file): each must decode (no broken image)."""
    path, config = report
    _open(driver, path, WINDOWS[0])
    figures = [p for p in driver.execute_script("return Object.keys(results)") if p.endswith(".png")]
    n_pairs = sum(len(d["models"]) for d in config["datasets"].values())
    assert len(figures) >= 3 * n_pairs  # examples, curves and scales of every (dataset, model)
    for figure in figures:
        driver.execute_script(
            "app.setView({content: 'img', contentPath: results[arguments[0]].data_uri, resultPath: arguments[0]})",
            figure)
        _wait(lambda figure=figure: driver.execute_script(
            "const i = Array.from(document.images).filter(i => i.src === results[arguments[0]].data_uri);"
            "return i.length > 0 && i.every(x => x.complete)", figure))
        width = driver.execute_script(
            "return Array.from(document.images).filter(i => i.src === results[arguments[0]].data_uri)"
            ".map(i => i.naturalWidth)", figure)
        assert width and min(width) > 100, (figure, width)
