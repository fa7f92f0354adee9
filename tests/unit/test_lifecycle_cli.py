"""``ivr-engine lifecycle sessions / report / publish / logs`` on a database of each backend
(the push credentials of tests/fixtures/apps.yaml are missing: a notice is a provider
error)."""

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


async def test_logs_list_and_get(db_url, tmp_path, monkeypatch, capsysbinary):
    """In process (``cli.main`` in a thread, as the command runs it): the logs a user sent
    unasked are listed by origin and written back byte for byte."""
    import datetime as dt

    from ivr_engine import cli as main_cli
    from ivr_engine.lifecycle.models import LogRequest
    from ivr_engine.repositories import Store

    now = dt.datetime.now(dt.timezone.utc)
    data = bytes(range(256)) * 5000  # 1.2 MiB: two chunks, binary
    store = await Store.open(db_url)
    try:
        async def pieces():
            yield data[:1024 * 1024]
            yield data[1024 * 1024:]

        assert await store.lifecycle.logs.store_own(LogRequest(
            id="own-1", app="customer", user="alice", device_id=None, platform="ios",
            created_at=now, expires_at=now, push_result="unasked", uploaded_at=now,
            content_type="application/gzip", size=len(data), origin="user", session_id=7),
            pieces(), since=now - dt.timedelta(days=1), most=5)
    finally:
        await store.close()
    monkeypatch.setenv("IVR_ARI_PASSWORD", "x")
    monkeypatch.setenv("IVR_DATABASE_URL", db_url)

    async def run(*args: str) -> tuple[int, bytes, bytes]:
        code = await asyncio.to_thread(main_cli.main, ["lifecycle", "logs", *args, "-c",
                                                       str(FIXTURE)])
        out = capsysbinary.readouterr()
        return code, out.out, out.err

    code, out, _ = await run("list", "--app", "customer", "--origin", "user")
    (row,) = json.loads(out)["requests"]
    assert code == 0 and (row["id"], row["origin"], row["session_id"], row["size"]) == (
        "own-1", "user", 7, len(data))
    code, out, _ = await run("list", "--app", "customer", "--origin", "admin")
    assert code == 0 and json.loads(out)["requests"] == []
    code, _, err = await run("get", "own-1", "-o", str(tmp_path / "log.gz"))
    assert code == 0 and (tmp_path / "log.gz").read_bytes() == data
    assert b"application/gzip" in err and b"user log of 'alice'" in err
    code, _, err = await run("get", "no-such-log")
    assert code == 1 and b"no upload" in err
