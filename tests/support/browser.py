"""Headless Chromium for the console's browser tests: Debian's chromium and chromium-driver (installed by
scripts/browser.sh), driven by Selenium offline (SE_OFFLINE: Selenium Manager downloads nothing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 800)


def require_browser() -> None:
    """Skip without Chromium and its driver; in CI (CI=true) fail instead, since they should be there."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not missing:
        return
    message = f"missing {', '.join(missing)}: run `scripts/browser.sh install`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def chromium(workdir: Path, *more_args: str) -> WebDriver:
    """A headless Chromium at WINDOW size, its profile and driver log under `workdir` (a WebDriver); `more_args`:
    further command-line switches (e.g. --host-resolver-rules)."""
    require_browser()
    os.environ["SE_OFFLINE"] = "true"  # for this process and the driver it starts
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--user-data-dir={workdir / 'profile'}",
                "--no-first-run", "--disable-extensions", "--disable-background-networking", *more_args):  # fmt: skip
        options.add_argument(arg)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(workdir / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    # --window-size counts the window, not the page: make the page itself WINDOW, as on a 1280x800 screen
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
    return driver
