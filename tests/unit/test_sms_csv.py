"""The upload rules, line by line (pure), and the config's sms section checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ivr_engine.config import ConfigError, parse_config
from ivr_engine.sms.csvrows import RowError, dnc_line, is_header, spool_line

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc)
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sms.yaml"
ENV = {"IVR_DATABASE_URL": "sqlite:///x.db", "SMS_PROVIDER_URL": "http://127.0.0.1:1"}


def line(text: str, n: int = 1):
    return spool_line(n, text, campaigns={"promo": 1, "camp2": 1}, dialer_of=lambda c: "bulk",
                      encoding_of=lambda d: "auto", region="UY", now=NOW)


def test_a_good_line_becomes_a_spool_row():
    row = line("promo;098344484;Hey World!;9999;\n", 7)
    assert not isinstance(row, RowError)
    assert (row["campaign"], row["destination"], row["priority"], row["position"],
            row["lane"], row["segments"], row["encoding"]) == \
        ("promo", "+59898344484", 9999, 7, "bulk", 1, "gsm7")
    assert not isinstance(line("promo;098344484;Hey;1;extra;columns"), RowError)


@pytest.mark.parametrize("text,reason", [
    ("\n", "blank line"),
    ("   \r\n", "blank line"),
    ("promo;098344484;Hey", "3 columns; expected at least 4"),
    ("nope;098344484;Hey;1", "campaign 'nope' does not exist"),
    ("promo;098344484;Hey;high", "priority 'high' is not a whole number"),
    ("promo;098344484;Hey;-1", "priority '-1'"),
    ("promo;hello;Hey;1", "'hello' is not a phone number"),
    ("promo;098344484;;1", "the message is empty"),
    ("promo;098344484;Mail me @ home;1", "message: forbidden character '@'"),
    ("promo;098344484;It´s;1", "message: forbidden character '´'"),
    ("promo;098344484;“quoted”;1", "message: forbidden character '“'"),
    ("promo;098344484;say \"hi\";1", "forbidden character '\"'"),
    ("promo;098344484;tab\there;1", "forbidden character U+0009"),
    ("pro‘mo;098344484;x;1", "campaign: forbidden character '‘'"),
])
def test_bad_lines_say_why(text, reason):
    err = line(text, 12)
    assert isinstance(err, RowError) and err.line == 12
    assert reason in err.reason, err.reason


def test_header_lines_are_recognised():
    assert is_header("campaign;destiny;message;priority\n", ("campaign",))
    assert is_header("\ufeffcampign;destiny;menssage;priority", ("campaign",))
    assert not is_header("promo;098344484;x;1", ("campaign",))


def test_dnc_lines():
    camps = {"promo": 1}
    assert dnc_line(1, "23578408;promo;\n", campaigns=camps, region="UY") == \
        ("+59823578408", "promo")
    assert dnc_line(1, "+59823578408", campaigns=camps, region="UY") == ("+59823578408", "")
    assert "campaign 'x' does not exist" in dnc_line(3, "23578408;x;", campaigns=camps,
                                                      region="UY").reason
    assert "blank line" in dnc_line(4, "\n", campaigns=camps, region="UY").reason


def test_the_fixture_config_is_valid_and_sms_references_are_checked():
    text = FIXTURE.read_text()
    cfg = parse_config(text, "sms.yaml", ENV)
    assert [p.name for p in cfg.model.sms.providers] == ["infobip", "twilio", "gateway"]
    fields = (text.replace("      sender: ACME\n", "      sender: ACME\n      rate: 0\n")
              .replace("      dial_string: 0-3", "      dial_string: 3-1"))
    refs = (text.replace("      provider: twilio\n", "      provider: nobody\n")
            .replace("    night: {dialer: ghost}".replace("ghost", "closed"),
                     "    night: {dialer: ghost}")
            .replace("      schedule: never", "      schedule: missing")
            .replace("      sender: \"+15005550006\"\n", "      sender: \"+15005550006\"\n"
                     "      default: true\n"))
    for bad, expected in [
        (fields, [("      rate: 0", "sms.providers.0.rate: Input should be greater than 0"),
                  ("      dial_string: 3-1", "sms.dialers.closed.dial_string: '3-1': the "
                   "range ends before it starts")]),
        (refs, [("      provider: nobody", "sms.dialers.slow.provider: provider 'nobody' is "
                 "not defined"),
                ("    night: {dialer: ghost}", "sms.campaigns.night.dialer: dialer 'ghost' is "
                 "not defined"),
                ("      schedule: missing", "sms.dialers.closed.schedule: schedule 'missing' "
                 "is not defined")])]:
        with pytest.raises(ConfigError) as exc:
            parse_config(bad, "sms.yaml", ENV)
        got = "\n".join(str(i) for i in exc.value.issues)
        lines = bad.splitlines()
        for needle, msg in expected:
            assert f"sms.yaml:{lines.index(needle) + 1}: {msg}" in got, got
    assert "only one provider can be the default ('infobip' already is)" in got


def test_delivery_reports_as_each_provider_sends_them():
    from ivr_engine.sms.reports import ReportError, Update, parse_report

    assert parse_report("twilio", "application/x-www-form-urlencoded",
                        b"MessageSid=SM1&MessageStatus=delivered&AccountSid=AC", {}) == \
        [Update("delivered", message_id="SM1")]
    assert parse_report("vonage", "application/json", b'{"messageId": "0A1", "status": '
                        b'"delivered", "client-ref": "k1"}', {}) == \
        [Update("delivered", message_id="0A1", key="k1")]
    assert parse_report("vonage", "", b"", {"messageId": "0A2", "status": "failed"}) == \
        [Update("failed", message_id="0A2")]
    assert parse_report("infobip", "application/json", b'{"results": [{"messageId": "k", '
                        b'"status": {"groupName": "DELIVERED"}}]}', {}) == \
        [Update("DELIVERED", key="k")]
    for kind, ctype, body, why in [
        ("url-post", "", b"", "send no delivery reports"),
        ("twilio", "", b"MessageSid=SM1", "MessageStatus is missing"),
        ("infobip", "application/json", b"[1]", "not a JSON object"),
        ("infobip", "application/json", b'{"results": [{"messageId": "\\ud800", '
         b'"status": {"groupName": "X"}}]}', "not valid Unicode"),
    ]:
        with pytest.raises(ReportError, match=why):
            parse_report(kind, ctype, body, {})


# ---------------------------------------------------------------- checked while spooled

def spooler(kind="spool", **limits):
    from ivr_engine.config.model_sms import SmsUploads
    from ivr_engine.sms.csvspool import CsvSpool

    sms = parse_config(FIXTURE.read_text(), "sms.yaml", ENV).model.sms
    sms = sms.model_copy(update={"uploads": SmsUploads(**limits)})
    return CsvSpool(kind, sms, NOW)


def spooled(body: bytes, chunk: int, **limits):
    """Feed ``body`` ``chunk`` bytes at a time; (result, rows read back)."""
    sp = spooler(**limits)
    try:
        for i in range(0, len(body), chunk):
            sp.feed(body[i:i + chunk])
        result = sp.finish()
        return result, [r for b in sp.batches() for r in b]
    finally:
        sp.close()


@pytest.mark.parametrize("chunk", [1, 7, 64, 100_000])
def test_lines_are_cut_whatever_the_chunks(chunk):
    body = ("campaign;destiny;message;priority\r\n"
            + "".join(f"promo;0996{i:05d};Hello {i};{i}\r\n" for i in range(2500))
            + "reminders;099700001;last line, no newline;7").encode()
    result, rows = spooled(body, chunk)
    assert result.ok and result.rows == 2501
    assert [(r["position"], r["priority"], r["message"]) for r in rows[:2]] == [
        (2, 0, "Hello 0"), (3, 1, "Hello 1")]
    assert (rows[-1]["position"], rows[-1]["campaign"], rows[-1]["message"]) == \
        (2502, "reminders", "last line, no newline")


@pytest.mark.parametrize("chunk", [3, 50, 100_000])
def test_a_line_too_long_is_a_bad_line_and_is_not_held(chunk):
    """aiohttp's readline failed on a line over its buffer (a 500); any length went through
    the CLI. The limit counts the line without its newline."""
    ok = "promo;099600001;" + "x" * (128 - 18) + ";1"
    assert len(ok) == 128
    body = (ok + "\n" + ok + "y\n" + ok + "\n" + "z" * 5000 + "\n" + ok).encode()
    result, _ = spooled(body, chunk, max_line_bytes=128)
    assert [(e.line, e.reason) for e in result.errors] == [
        (2, "longer than 128 bytes (sms.uploads.max_line_bytes)"),
        (4, "longer than 128 bytes (sms.uploads.max_line_bytes)")]
    assert result.rows == 3  # lines 1, 3 and 5 were read as rows
    result, _ = spooled(b"promo;099600001;" + b"x" * 200, chunk, max_line_bytes=128)
    assert [e.line for e in result.errors] == [1]  # the last line, no newline


def test_size_and_row_limits_refuse_the_file():
    from ivr_engine.sms.csvspool import TooLarge

    line = b"promo;099600001;Hello;1\n"
    with pytest.raises(TooLarge, match=r"larger than 2048 bytes \(sms.uploads.max_bytes\)"):
        spooled(line * 100, 512, max_bytes=2048)
    result, rows = spooled(b"campaign;destiny;message;priority\n" + line * 10, 64, max_rows=10)
    assert result.ok and len(rows) == 10  # the header is not a row
    with pytest.raises(TooLarge, match=r"more than 10 rows \(sms.uploads.max_rows\)"):
        spooled(line * 11, 64, max_rows=10)


def test_the_do_not_contact_file_is_spooled_too():
    sp = spooler("dnc")
    try:
        sp.feed(b"number;campaign\n23578408;promo;\n231137")
        sp.feed(b"58;\n")
        assert sp.finish().ok
        assert [p for b in sp.batches() for p in b] == [("+59823578408", "promo"),
                                                        ("+59823113758", "")]
    finally:
        sp.close()
