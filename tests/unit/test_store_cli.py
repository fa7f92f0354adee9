"""``ivr-engine db upgrade`` / ``db current`` on a fresh database of each backend, and
``ivr-engine run`` refusing a database that is not upgraded (exit 2, naming the command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "ivr.yaml"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "IVR_ARI_PASSWORD": "x", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ivr_engine.cli", *args], capture_output=True,
                          text=True, env=e, cwd=ROOT, timeout=60)


def shown(url: str) -> str:
    from ivr_engine.store import redact

    return redact(url)


def test_db_upgrade_and_current_on_a_fresh_database(empty_db_url):
    r = cli("db", "current", "--url", empty_db_url)
    assert r.returncode == 1 and r.stdout == f"{shown(empty_db_url)}: empty\n", r
    assert "run `ivr-engine db upgrade`" in r.stderr
    r = cli("db", "upgrade", "--url", empty_db_url)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{shown(empty_db_url)}: upgraded from empty to 0005 (head)\n"
    r = cli("db", "upgrade", "--url", empty_db_url)
    assert (r.returncode, r.stdout) == (0, f"{shown(empty_db_url)}: already at 0005 (head)\n")
    r = cli("db", "current", "--url", empty_db_url)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{shown(empty_db_url)}: 0005 (head)\n",
                                                  "")


def test_the_engine_refuses_to_start_until_db_upgrade_has_run(empty_db_url):
    """Exit 2 before anything else starts (no Asterisk is needed to see it); the config's
    database_url comes from IVR_DATABASE_URL, as in the demo and the tests."""
    env = {"IVR_DATABASE_URL": empty_db_url, "IVR_API_LISTEN": "127.0.0.1:1"}
    r = cli("run", "-c", str(FIXTURE), env=env)
    assert r.returncode == 2, r.stderr
    assert f"database {shown(empty_db_url)} is empty; this engine needs revision 0005: run " \
           "`ivr-engine db upgrade` (with the same config) first" in r.stderr
    r = cli("db", "upgrade", "-c", str(FIXTURE), env=env)
    assert r.returncode == 0 and "upgraded from empty to 0005 (head)" in r.stdout, r.stderr


def test_db_upgrade_creates_a_new_sqlite_file(tmp_path):
    db = tmp_path / "new" / "ivr.db"
    db.parent.mkdir()
    r = cli("db", "upgrade", "-c", str(FIXTURE), env={"IVR_DATABASE_URL": f"sqlite:///{db}"})
    assert r.returncode == 0, r.stderr
    assert db.exists() and "upgraded from empty to 0005 (head)" in r.stdout


def test_db_commands_report_bad_urls_and_unreachable_databases(tmp_path):
    r = cli("db", "upgrade", "--url", "mysql://u:secret@h/db")
    assert r.returncode == 2 and "expected sqlite:///<file> or postgresql://" in r.stderr
    assert "secret" not in r.stderr
    r = cli("db", "current", "--url", f"sqlite:///{tmp_path}/no/such/dir/x.db")
    assert r.returncode == 1 and "db current: cannot use the database" in r.stderr
    r = cli("db", "upgrade", "-c", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2
