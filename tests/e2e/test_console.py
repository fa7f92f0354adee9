"""The admin console in a real browser: headless Chromium driven by Selenium against the real
engine (the example config, the console on its admin listener) and the sandbox Asterisk,
with SIPp callers on the carrier trunk.

One browser session for the module (starting Chromium costs seconds). What is asserted is
what a person sees: the login wall, pages without console errors, a node per menu on the
tree graph and a walk lit on it, a caller appearing on the calls page, moving as it presses
keys and leaving, a dialer stopped and started by its buttons (and refused without the CSRF
token). ``IVR_CONSOLE_SCREENSHOTS=<dir>`` saves the pages' screenshots there (the docs'
pictures: ``IVR_CONSOLE_SCREENSHOTS=docs/img``).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest
import yaml
from selenium.webdriver.common.by import By

from ivr_engine.testing.sipp import SippCaller
from tests.integration.engine_proc import start_engine
from ivr_engine.testing.browser import chrome, console_errors
from tests.support.console_engine import (
    ADMIN_TOKEN,
    EXAMPLE,
    console_config,
    console_env,
    free_port,
)

pytestmark = pytest.mark.sandbox

PAGES = ("trees", "calls", "queues", "sms", "apps")
#: every menu of the example config (read from it: a menu added there must be drawn too)
EXAMPLE_MENUS = set(yaml.safe_load(EXAMPLE.read_text())["menus"])
SHOTS = os.environ.get("IVR_CONSOLE_SCREENSHOTS")


@pytest.fixture(scope="module")
async def engine(sandbox, tmp_path_factory):
    work = tmp_path_factory.mktemp("console")
    admin_port = free_port()
    eng = await start_engine(sandbox, work, console_config(work),
                             extra_env=console_env(sandbox, admin_port))
    eng.admin_url = f"http://127.0.0.1:{admin_port}"
    yield eng
    assert await eng.stop() == 0, eng.log()[-3000:]


@pytest.fixture(scope="module")
def browser(engine):
    driver = chrome()
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


async def until(check, timeout: float, step: float = 0.03):
    """Poll ``check()`` (in a worker thread: Selenium blocks) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(step)


def shot(driver, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SHOTS) / f"console-{name}.png"))


async def login(driver, engine) -> None:
    def do() -> str:
        driver.get(f"{engine.admin_url}/console/login")
        driver.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        return driver.current_url
    await asyncio.to_thread(do)


async def test_nothing_without_login_then_every_page_loads_clean(engine, browser):
    # no page without the cookie: the browser lands on the login form
    for name in PAGES:
        await asyncio.to_thread(browser.get, f"{engine.admin_url}/console/{name}")
        assert browser.current_url == f"{engine.admin_url}/console/login", name
    # the public listener does not serve the console at all (admin listener only)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{engine.api_url}/console/login") as r:
            assert r.status == 404
        # a wrong token goes back to the form and logs nobody in
        async with http.post(f"{engine.admin_url}/console/login", data={"token": "x" * 40},
                             allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/console/login?failed=1"
            assert "ivr_console" not in r.cookies
    shot(browser, "login")
    await login(browser, engine)
    assert browser.current_url.endswith("/console/trees")
    cookie = browser.get_cookie("ivr_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    console_errors(browser)  # the login page's, read and dropped (asserted below per page)
    for name in PAGES:
        await asyncio.to_thread(browser.get, f"{engine.admin_url}/console/{name}")
        assert browser.find_element(By.CSS_SELECTOR, "nav a.active").text.lower() == name
        assert console_errors(browser) == [], name
        if name != "calls":
            shot(browser, name)


async def test_the_tree_has_a_node_per_menu_and_lights_a_walk(engine, browser):
    await asyncio.to_thread(browser.get, f"{engine.admin_url}/console/trees?scope=all")
    menus = {e.get_attribute("id") for e in
             browser.find_elements(By.CSS_SELECTOR, "#graph svg g.node.menu")}
    assert menus == {f"m-{m}" for m in EXAMPLE_MENUS}
    # try it: the Main line, 1 then 2 on a Monday morning (sales open): main > sales > billing
    browser.find_element(By.ID, "entry").clear()
    browser.find_element(By.ID, "entry").send_keys("+15551230000")
    browser.find_element(By.ID, "keys").send_keys("1 2 1")
    browser.find_element(By.ID, "at").send_keys("2026-11-23T10:15")
    browser.find_element(By.CSS_SELECTOR, "#try-form button").click()

    def lit() -> set[str]:
        return set(browser.execute_script(
            "return Array.from(document.querySelectorAll('#graph g.node.hit'), e => e.id);"))
    assert await until(lambda: lit() == {"m-main", "m-sales", "m-billing", "d-queue-billing"},
                       5), lit()
    assert browser.find_element(By.CSS_SELECTOR, "#walk .destination").text == \
        "queue:billing"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph g.edge.hit")) == 3
    assert console_errors(browser) == []
    shot(browser, "trees-walk")


async def test_a_sipp_caller_appears_moves_and_leaves_within_a_second(engine, browser,
                                                                     sandbox, tmp_path):
    await asyncio.to_thread(browser.get, f"{engine.admin_url}/console/calls")
    state = lambda: browser.find_element(By.ID, "calls-live").get_attribute(  # noqa: E731
        "data-state")
    assert await until(lambda: state() == "live", 5)

    def row(caller: str) -> str | None:  # one script: the rows are swapped while we look
        return browser.execute_script(
            "var r = document.querySelector(\"tr[data-caller='\" + arguments[0] + \"']\");"
            "return r ? r.dataset.path : null;", caller)

    async with SippCaller(sandbox, tmp_path) as sipp, asyncio.TaskGroup() as tg:
        # +15551230000: main; 2 after 3 s (support: no schedule), hang up 3 s later
        [call], finished = sipp.launch("+15551230000", "2", start_ms=3000, hold_ms=6000)
        placed = tg.create_task(finished)
        assert await until(lambda: row(call.caller) == "main", 10), row(call.caller)
        seen = time.monotonic()
        entered = call.first("app", "Stasis")
        assert entered is not None and seen - entered < 1.0, seen - entered
        shot(browser, "calls")
        assert await until(lambda: row(call.caller) == "main/support", 10)
        moved = time.monotonic()
        key = call.first("key", "2")
        assert key is not None and moved - key < 1.0, moved - key
        assert await until(lambda: row(call.caller) is None, 10)
        gone = time.monotonic()
        hung_up = call.first("hangup") or call.first("ended")
        assert hung_up is not None and gone - hung_up < 1.0, gone - hung_up
    run = placed.result()
    assert run.returncode == 0, run.output
    print(f"\ncalls page: appeared {seen - entered:.3f} s after Stasis, moved "
          f"{moved - key:.3f} s after the key, gone {gone - hung_up:.3f} s after the hang-up")
    assert console_errors(browser) == []


async def test_a_dialer_stops_and_starts_and_needs_the_csrf_token(engine, browser):
    await asyncio.to_thread(browser.get, f"{engine.admin_url}/console/sms")

    def running() -> str | None:  # one script: htmx swaps the table while we look
        return browser.execute_script(
            "var d = document.getElementById('dialer-bulk'); return d && d.dataset.running;")

    async def monitor() -> bool:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{engine.admin_url}/v1/sms/monitor", headers={
                    "Authorization": f"Bearer {ADMIN_TOKEN}"}) as r:
                doc = await r.json()
        return next(d for d in doc["dialers"] if d["name"] == "bulk")["running"]

    assert running() == "yes" and await monitor() is True
    browser.find_element(By.CSS_SELECTOR, "#dialer-bulk button.stop").click()
    assert await until(lambda: running() == "no", 5)
    assert await monitor() is False  # the JSON API sees the same switch
    shot(browser, "sms")
    browser.find_element(By.CSS_SELECTOR, "#dialer-bulk button.start").click()
    assert await until(lambda: running() == "yes", 5)
    assert await monitor() is True
    # the session cookie alone is refused: a forged cross-site request has no CSRF token
    jar = {"ivr_console": browser.get_cookie("ivr_console")["value"]}
    csrf = browser.find_element(By.TAG_NAME, "body").get_attribute("data-csrf")
    async with aiohttp.ClientSession(cookies=jar) as http:
        url = f"{engine.admin_url}/console/sms/dialers/bulk/stop"
        async with http.post(url, allow_redirects=False) as r:
            assert r.status == 403
        async with http.post(url, headers={"X-CSRF-Token": "x" + csrf[1:]},
                             allow_redirects=False) as r:
            assert r.status == 403
        assert await monitor() is True
        async with http.post(url, data={"csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303  # a plain form: back to the page
        assert await monitor() is False
    assert console_errors(browser) == []
