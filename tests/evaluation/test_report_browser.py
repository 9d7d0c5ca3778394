"""The report in a real browser: the metrics table fits a 1280 px window.

Drives Debian's headless ``chromium`` through Selenium and ``chromedriver`` (as the demo's
browser test does). Without them it skips, unless ``SESSIONREC_REQUIRE_SERVICES=1`` (CI)
makes that a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionrec.cli import main
from sessionrec.evaluation.report import build_report
from sessionrec.evaluation.results import load_results

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REQUIRE = os.environ.get("SESSIONREC_REQUIRE_SERVICES") == "1"
TRAIN = [" ".join(str((s + j) % 12 + 1) for j in range(n)) for n in (3, 5, 13) for s in range(12)]
LABELS = [
    "vsknn tuned with 60 trials on the validation split",
    "vstan (defaults)",
    "repeat layer over vstan",
    "gru4rec, 10 epochs, hidden 100",
    "sr",
    "a_label_without_any_space_that_is_far_too_long_to_fit",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = CHROMIUM is None or CHROMEDRIVER is None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing = True
    if missing:
        message = "chromium, chromedriver or selenium is not installed"
        if REQUIRE:
            pytest.fail(message + " and SESSIONREC_REQUIRE_SERVICES=1")
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _report_page(folder: Path) -> Path:
    """Six results with long labels and large timings: the widest table a report makes."""
    pytest.importorskip("matplotlib")
    bench = folder / "bench"
    bench.mkdir()
    (bench / "train_sessions.txt").write_text("\n".join(TRAIN) + "\n")
    (bench / "test_sessions.txt").write_text("1 2 3\n5 6 7 8\n7 99\n")
    results = folder / "sr.json"
    argv = ["-q", "evaluate", "--benchmark", str(bench), "--model", "sr"]
    assert main([*argv, "--save-results", str(results), "--latency-calls", "5"]) == 0
    data = []
    for label in LABELS:
        result = load_results(results)
        result["label"] = label
        result["timing"] = {"fit_seconds": 123456.78, "predict_seconds": 12345.67}
        data.append(result)
    page = folder / "report.html"
    page.write_text(build_report(data, "width"))
    return page


def test_the_metrics_table_fits_1280_pixels(browser: Any, tmp_path: Path) -> None:
    page = _report_page(tmp_path)
    browser.get(page.as_uri())
    sizes = browser.execute_script(
        """
        const table = document.querySelector('#metrics table');
        const box = table.parentElement;
        return {
          window: document.documentElement.clientWidth,
          page: document.documentElement.scrollWidth,
          table: table.getBoundingClientRect().right,
          box: box.clientWidth,
          boxScroll: box.scrollWidth,
        };
        """
    )
    # Before: the table was 1176 px wide in a 992 px column, scrolled sideways.
    assert sizes["boxScroll"] <= sizes["box"], sizes  # no sideways scrolling in its box
    assert sizes["table"] <= sizes["window"], sizes  # nor out of the window
    assert sizes["page"] <= sizes["window"], sizes
