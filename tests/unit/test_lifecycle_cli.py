"""``ivr-engine lifecycle sessions / report / publish`` on a database of each backend (the
push credentials of tests/fixtures/apps.yaml are missing: a notice is a provider error)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "apps.yaml"


def cli(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "IVR_ARI_PASSWORD": "x", "IVR_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "ivr_engine.cli", "lifecycle", *args, "-c",
                           str(FIXTURE)], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=60)


async def _seed(url: str) -> None:
    import datetime as dt

    from ivr_engine.repositories import Store

    now = dt.datetime.now(dt.timezone.utc)
    store = await Store.open(url)
    try:
        await store.devices.upsert(user="alice", app="customer", platform="ios",
                                   push_token="ab" * 32, app_version="1.0")
        for n, device in enumerate(("a", "b")):
            await store.lifecycle.login(
                token_hash=f"{n:064x}", app="customer", user="alice",
                now=now - dt.timedelta(minutes=5 - n), device_id=device, platform="mobile",
                app_type="Mobile", app_version="1.0", os="ios", os_version="17",
                device_model="iPhone", push_token=None)
    finally:
        await store.close()


async def test_sessions_report_publish(db_url):
    await _seed(db_url)
    run = lambda *a: asyncio.to_thread(cli, *a, url=db_url)  # noqa: E731
    r = await run("sessions", "--app", "customer")
    assert r.returncode == 0, r.stderr
    (s,) = json.loads(r.stdout)["sessions"]
    assert (s["user"], s["device_id"]) == ("alice", "b")
    r = await run("report", "--app", "customer", "--csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout.lstrip("\ufeff"))))
    assert [(x["device_id"], x["ended"]) for x in rows] == [("a", "replaced"), ("b", "")]
    r = await run("publish", "--app", "customer", "--platform", "ios", "--version", "2.0",
                  "--kind", "mandatory", "--store-url", "https://apps.example/c",
                  "--message", "en=Please update")
    assert r.returncode == 1, r.stderr  # the one notice could not be sent
    out = json.loads(r.stdout)
    assert out["notified"]["provider_error"] == 1 and out["sessions_ended"] == 1
    r = await run("publish", "--app", "customer", "--platform", "ios", "--version", "2.x",
                  "--kind", "mandatory", "--store-url", "https://apps.example/c")
    assert r.returncode == 2 and "version" in r.stderr
    r = await run("report", "--from", "yesterday")
    assert r.returncode == 2 and "from" in r.stderr
    r = await run("sessions", "--app", "nope")
    assert r.returncode == 2
