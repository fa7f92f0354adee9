"""A headless Chromium (Debian ``chromium`` + ``chromium-driver``, installed by
``scripts/install --test``) driven by Selenium: the console's browser tests and benchmark
(:func:`chrome`), and the web widget's visitor with a microphone and the sandbox's CA
(:class:`Browser`; tests/e2e/test_edge.py, bench/edge.py). Needs the test extra (selenium).

The browser reaches loopback only: every other address goes to a proxy on a closed local
port (Chromium's own background requests — updates, safe browsing — never leave the
machine; loopback is never proxied), and its background services are off. Its console
messages are kept (``goog:loggingPrefs``) so a test can require a page to load without
errors.

A visitor trusts the sandbox's local CA the way a Linux desktop would: the CA is added to
the NSS database of the browser's own home (``$HOME/.pki/nssdb``, with NSS's ``certutil``),
so Asterisk's ``wss://`` certificate is verified — no ``--ignore-certificate-errors``.
Microphone: Chromium's fake device (a beep) and fake permission prompt. Loopback ICE
candidates are allowed (``--allow-loopback-in-peer-connection``): the sandbox's Asterisk
offers 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--window-size=1440,1000", "--hide-scrollbars", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--disable-sync",
         "--disable-component-update", "--disable-default-apps", "--no-pings",
         "--disable-domain-reliability", "--disable-client-side-phishing-detection",
         "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
         "--proxy-server=http://127.0.0.1:9", "--password-store=basic")
#: a web visitor placing WebRTC calls
MEDIA_FLAGS = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
               "--allow-loopback-in-peer-connection",
               "--autoplay-policy=no-user-gesture-required")


def chrome(extra: Sequence[str] = (), *, home: Path | None = None,
           log_file: Path | None = None) -> Any:
    """A headless Chromium under WebDriver; ``home``: its ``$HOME`` (an NSS database there)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        raise RuntimeError("chromium and chromedriver are needed: scripts/install --test "
                           "installs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (*FLAGS, *extra):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    env = {**os.environ, "HOME": str(home)} if home is not None else None
    service = Service(executable_path=driver, env=env,
                      log_output=str(log_file) if log_file is not None else None)
    return webdriver.Chrome(options=options, service=service)


def console_errors(driver: Any) -> list[dict]:
    """The browser console's errors since the last call (reading the log empties it)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def trust_ca(home: Path, ca_file: str) -> None:
    """An NSS database in ``home`` that trusts ``ca_file`` for servers."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    certutil = shutil.which("certutil")
    if certutil is None:
        raise RuntimeError("certutil not found: apt-get install libnss3-tools "
                           "(scripts/install --test)")
    subprocess.run([certutil, "-d", f"sql:{db}", "-N", "--empty-password"], check=True,
                   capture_output=True)
    subprocess.run([certutil, "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "ivr-sandbox-ca",
                    "-i", ca_file], check=True, capture_output=True)


class Browser:
    """A web visitor: ``with Browser(workdir, ca_file) as b: b.driver.get(url)``."""

    def __init__(self, workdir: Path, ca_file: str) -> None:
        self.workdir = Path(workdir)
        self.ca_file = ca_file
        self.driver: Any = None

    def __enter__(self) -> "Browser":
        home = self.workdir / "home"
        trust_ca(home, self.ca_file)
        self.driver = chrome((*MEDIA_FLAGS, f"--user-data-dir={self.workdir / 'profile'}"),
                             home=home, log_file=self.workdir / "chromedriver.log")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.driver is not None:
            self.driver.quit()
            self.driver = None

    def script(self, js: str, *args: Any) -> Any:
        return self.driver.execute_script(js, *args)

    def wait(self, js: str, timeout: float, what: str, *args: Any) -> Any:
        """Poll ``js`` (an expression returned by a script) until it is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.script(f"return {js};", *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout:g} s "
                                   f"(widget: {self.script('return window.ivrWidget;')})")
            time.sleep(0.02)

    def click(self, css: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, css).click()

    def console(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser")]
