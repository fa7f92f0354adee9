"""A web visitor: headless Debian Chromium driven over WebDriver (Selenium), for the widget's
end-to-end test and bench/webrtc_setup.py. Needs the test extra (selenium) and Debian's
``chromium`` and ``chromium-driver`` (``scripts/install --test``).

The browser trusts the sandbox's local CA the way a Linux desktop would: the CA is added to
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
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
         "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
         "--no-first-run", "--disable-background-networking", "--disable-sync")


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
    """``with Browser(workdir, ca_file) as b: b.driver.get(url)``."""

    def __init__(self, workdir: Path, ca_file: str) -> None:
        self.workdir = Path(workdir)
        self.ca_file = ca_file
        self.driver: Any = None

    def __enter__(self) -> "Browser":
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        home = self.workdir / "home"
        trust_ca(home, self.ca_file)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={self.workdir / 'profile'}")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(CHROMEDRIVER, env={**os.environ, "HOME": str(home)},
                          log_output=str(self.workdir / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=opts)
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
