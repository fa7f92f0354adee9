"""`ivr-engine sms …` as an operator runs it: uploads (all or nothing, every bad line as
file:line), a single send from the command line, start/stop, monitor, delete."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.support.sms_providers import LocalProviders, start

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "sms.yaml"


async def cli(db_url: str, provider_url: str, *args: str, config: Path = FIXTURE
              ) -> tuple[int, str, str]:
    env = {**os.environ, "IVR_DATABASE_URL": db_url, "SMS_PROVIDER_URL": provider_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr_engine.cli", "sms", *args[:1], "-c", str(config),
        *args[1:], env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_the_sms_commands(db_url, tmp_path):
    providers = LocalProviders()
    runner, url = await start(providers)
    try:
        bad = tmp_path / "bad.csv"
        bad.write_text("promo;099600001;Hi;9999;\nnope;099600002;Hi;1\npromo;12;Hi;1\n\n")
        code, out, err = await cli(db_url, url, "upload", str(bad))
        assert code == 2 and out == "", err
        assert err.splitlines() == [
            f"{bad}:2: campaign 'nope' does not exist (sms.campaigns)",
            f"{bad}:3: '12' is not a possible number for its country (+598)",
            f"{bad}:4: blank line (remove blank and trailing empty lines)",
            f"{bad}: 3 bad line(s); nothing imported"]
        good = tmp_path / "good.csv"
        good.write_text("campaign;destiny;message;priority\npromo;099600001;Hi;9999;\n"
                        "reminders;099600002;Hi;1\n")
        assert (await cli(db_url, url, "upload", str(good)))[:2] == \
            (0, f"{good}: 2 rows imported\n")
        dnc = tmp_path / "dnc.csv"
        dnc.write_text("099600001;promo;\n")
        assert (await cli(db_url, url, "dnc-upload", str(dnc)))[:2] == \
            (0, f"{dnc}: 1 new numbers imported\n")
        code, out, err = await cli(db_url, url, "send", "--to", "099 635 199", "--text",
                                   "Hola €", "--now")
        sent = json.loads(out)
        assert code == 0 and sent["status"] == "sent" and sent["provider"] == "infobip", err
        assert providers.requests[-1].json["messages"][0]["destinations"][0]["to"] == \
            "59899635199"
        code, out, err = await cli(db_url, url, "send", "--to", "+33612345678", "--text",
                                   "x", "--provider", "twilio")
        assert code == 2 and "does not match the number_regexp" in err
        assert (await cli(db_url, url, "stop", "slow"))[:2] == (0, "dialer slow: stopped\n")
        assert (await cli(db_url, url, "stop", "ghost"))[0] == 2
        code, out, _ = await cli(db_url, url, "monitor")
        mon = json.loads(out)
        assert [d["running"] for d in mon["dialers"]] == [True, False, True, True]
        promo = next(c for c in mon["campaigns"] if c["campaign"] == "promo")
        assert promo["not_processed"] == 1
        assert (await cli(db_url, url, "delete", "reminders"))[:2] == \
            (0, "campaign reminders: 1 unprocessed rows deleted\n")
    finally:
        await runner.cleanup()


async def test_upload_limits_on_the_command_line(db_url, tmp_path):
    """The CLI read any line and any file whole into the import's one transaction."""
    config = tmp_path / "sms.yaml"
    config.write_text(FIXTURE.read_text().replace(
        "sms:\n", "sms:\n  uploads: {max_bytes: 2048, max_line_bytes: 200}\n", 1))
    long = tmp_path / "long.csv"
    long.write_text("promo;099600001;Hi;1\npromo;099600002;" + "x" * 300 + ";1\n")
    code, out, err = await cli(db_url, "http://127.0.0.1:1", "upload", str(long), config=config)
    assert (code, out, err.splitlines()) == (2, "", [
        f"{long}:2: longer than 200 bytes (sms.uploads.max_line_bytes)",
        f"{long}: 1 bad line(s); nothing imported"])
    big = tmp_path / "big.csv"
    big.write_text("promo;099600001;Hi;1\n" * 200)
    code, out, err = await cli(db_url, "http://127.0.0.1:1", "upload", str(big), config=config)
    assert (code, out, err) == (2, "", f"{big}: the file is larger than 2048 bytes "
                                "(sms.uploads.max_bytes); nothing imported\n")
