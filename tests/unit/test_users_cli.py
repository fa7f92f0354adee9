"""``ivr-engine users list / import / delete`` and what ``ivr-engine check`` says once it has
read the database (issue 19), on a database of each backend."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from ivr_engine.cli import build_parser
from ivr_engine.users.records import parse_user

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "wakeup.yaml"
NOW = dt.datetime(2026, 12, 10, tzinfo=dt.timezone.utc)


class Out:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys, monkeypatch):
    """``ivr-engine ARGS`` in process (in a thread: the commands run their own event loop),
    on the database ``url``."""
    async def run(*args: str, url: str) -> Out:
        monkeypatch.setenv("IVR_DATABASE_URL", url)
        capsys.readouterr()
        parsed = build_parser().parse_args(list(args))
        code = await asyncio.to_thread(parsed.func, parsed)
        out, err = capsys.readouterr()
        return Out(code, out, err)
    return run


async def _put(url: str, *users) -> None:
    from ivr_engine.repositories import Store

    store = await Store.open(url)
    try:
        for name, values in users:
            await store.users.put(parse_user(name, values), NOW)
    finally:
        await store.close()


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


async def test_check_says_what_the_database_holds(db_url, tmp_path, cli):
    text = FIXTURE.read_text().replace('      "2": user:bob\n',
                                       '      "2": user:bob\n      "3": user:dave\n'
                                       '      "4": user:eve\n')
    config = tmp_path / "c.yaml"
    config.write_text(text)
    await _put(db_url, ("alice", {"ringing_device": "uc", "uc_endpoint": "bob"}),
               ("dave", {"ringing_device": "uc", "uc_endpoint": "dave"}),
               ("zed", {"mobile_endpoint": "zed", "app": "gone"}))
    r = await cli("check", str(config), url=db_url)
    assert r.returncode == 0, r.stderr
    warnings = [w for w in r.stderr.splitlines() if "user" in w]
    assert warnings == [
        f"{config}:{line_of(text, '  alice:')}: users.alice: warning: user 'alice' is also "
        "in the database, whose user wins: calls ring the database's (`ivr-engine users "
        "delete` brings this one back)",
        f"{config}:{line_of(text, 'user:eve')}: menus.top.options.4: warning: user 'eve' is "
        "neither under users: nor in the database: its callers would go to the dialplan "
        "fallback",
        "database: users.zed.app: warning: app 'gone' is not defined under apps: calls to "
        "this database user go to the dialplan fallback"], r.stderr
    assert "2 users in the file, 4 warnings" in r.stdout  # and the FCM file's
    # without the database: the file alone cannot tell dave from eve
    r = await cli("check", str(config), "--no-database", url=db_url)
    assert r.returncode == 0 and "also in the database" not in r.stderr
    assert sum("must be a database user" in w for w in r.stderr.splitlines()) == 2


async def test_check_does_not_create_a_missing_sqlite_file(tmp_path, cli):
    db = tmp_path / "none.db"
    r = await cli("check", str(FIXTURE), url=f"sqlite:///{db}")
    assert r.returncode == 0, r.stderr
    assert f"the database was not read ({db} does not exist yet)" in r.stderr
    assert not db.exists()


async def test_users_import_list_delete(db_url, tmp_path, cli):
    run = lambda *a: cli("users", *a, "-c", str(FIXTURE), url=db_url)  # noqa: E731
    bad = tmp_path / "bad.csv"
    bad.write_text("name;ringing_device;uc_endpoint\ndana;uc;dana\nerin;fax;erin\n")
    r = await run("import", str(bad))
    assert r.returncode == 2
    assert [x for x in r.stderr.splitlines() if "csv" in x] == [
        f"{bad}:3: ringing_device: input should be 'mobile', 'uc' or 'uc+mobile'",
        f"{bad}: 1 bad line(s); nothing imported"]
    good = tmp_path / "good.csv"
    good.write_text("name;ringing_device;uc_endpoint\ndana;uc;dana\nerin;uc;erin\n")
    r = await run("import", str(good))
    assert (r.returncode, r.stdout.strip()) == (
        0, f"{good}: 2 users imported (2 new, 0 replaced)"), r.stderr
    r = await run("list", "--limit", "1")
    page = json.loads(r.stdout)
    assert ([u["name"] for u in page["users"]], page["next_after"]) == (["dana"], "dana")
    r = await run("list", "--after", "dana")
    assert [u["name"] for u in json.loads(r.stdout)["users"]] == ["erin"]
    assert (await run("delete", "dana")).returncode == 0
    r = await run("delete", "dana")
    assert (r.returncode, r.stderr.splitlines()[-1]) == (
        1, "users delete: no database user named 'dana'")
    r = await run("delete", "alice")
    assert r.returncode == 1 and "defined in the config file" in r.stderr
