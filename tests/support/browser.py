"""A headless Chromium (Debian ``chromium`` + ``chromium-driver``, installed by
``scripts/install --test``) driven by Selenium, for the console's browser tests and the
console benchmark.

The browser reaches loopback only: every other address goes to a proxy on a closed local
port (Chromium's own background requests — updates, safe browsing — never leave the
machine), and its background services are off. Its console messages are kept
(``goog:loggingPrefs``) so a test can require a page to load without errors.
"""

from __future__ import annotations

import shutil
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--window-size=1440,1000", "--hide-scrollbars", "--no-first-run",
        "--disable-extensions", "--disable-background-networking", "--disable-sync",
        "--disable-component-update", "--disable-default-apps", "--no-pings",
        "--disable-domain-reliability", "--disable-client-side-phishing-detection",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
        "--proxy-server=http://127.0.0.1:9", "--password-store=basic")


def chrome() -> webdriver.Chrome:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        raise RuntimeError("chromium and chromedriver are needed: scripts/install --test "
                           "installs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def console_errors(driver: Any) -> list[dict]:
    """The browser console's errors since the last call (reading the log empties it)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
