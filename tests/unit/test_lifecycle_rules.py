"""The lifecycle's pure decisions (lifecycle/rules.py, report.py): who gets a notice, which
logins and sessions a mandatory release refuses or ends, idle expiry, the report's range and
CSV."""

from __future__ import annotations

import datetime as dt

import pytest

from ivr_engine.lifecycle import report
from ivr_engine.lifecycle.rules import (
    EXPIRED,
    MANDATORY_UPDATE,
    DeviceFacts,
    ReleaseFacts,
    active_key,
    idle_expired,
    login_block,
    notice_result,
    notice_targets,
    session_block,
    session_end,
)
from ivr_engine.lifecycle.versions import VersionError, parse_version

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)


def release(version: str, kind: str = "mandatory", platform: str = "ios", grace: int = 0,
            rid: int = 1) -> ReleaseFacts:
    return ReleaseFacts(rid, platform, parse_version(version), kind,
                        f"https://apps.example/{version}", T0, grace)


def test_notices_go_only_to_older_devices_not_yet_sent():
    devices = [DeviceFacts(1, "2.17.60", True), DeviceFacts(2, "2.17.100", True),
               DeviceFacts(3, "2.18", True), DeviceFacts(4, None, True),
               DeviceFacts(5, "junk", True), DeviceFacts(6, "2.17.99", True)]
    target = parse_version("2.17.100")
    assert [d.id for d in notice_targets(devices, target, set())] == [1, 6]
    # a re-publication: device 1 was sent already, 6 was not (its push failed)
    assert [d.id for d in notice_targets(devices, target, {1})] == [6]


def test_login_is_refused_below_a_mandatory_release_from_its_publication():
    releases = [release("2.17.100", grace=3600), release("2.16", rid=2),
                release("9.0", kind="recommended", rid=3), release("3.0", platform="android",
                                                                    rid=4)]
    block = login_block(releases, "ios", "2.17.60")
    assert block is not None and str(block.version) == "2.17.100"  # the highest above
    assert login_block(releases, "ios", "2.17.100") is None  # equal: allowed
    assert login_block(releases, "ios", "2.18") is None
    assert login_block(releases, "windows", "1.0") is None  # another platform
    assert str(login_block(releases, "android", "2.99").version) == "3.0"
    with pytest.raises(VersionError):
        login_block(releases, "ios", "2.x")


def test_a_session_ends_at_the_notice_or_after_the_grace():
    now = T0 + dt.timedelta(seconds=10)
    assert session_block([release("3.0")], "ios", "2.0", now) is not None  # no grace
    graced = [release("3.0", grace=60)]
    assert session_block(graced, "ios", "2.0", now) is None  # still in its grace
    assert session_block(graced, "ios", "2.0", T0 + dt.timedelta(seconds=60)) is not None
    assert session_block(graced, "ios", "3.0", T0 + dt.timedelta(days=1)) is None
    assert session_block([release("3.0", kind="recommended")], "ios", "2.0", now) is None


def test_session_end_reason_and_time():
    seen = T0 - dt.timedelta(hours=2)
    late = T0 + dt.timedelta(hours=5)
    assert session_end(platform="ios", version="2.0", last_seen=seen, now=late,
                       idle_seconds=None, releases=[release("3.0", grace=600)]) == (
        MANDATORY_UPDATE, T0 + dt.timedelta(seconds=600))
    assert session_end(platform="ios", version="2.0", last_seen=seen, now=late,
                       idle_seconds=3600, releases=[]) == (EXPIRED, seen +
                                                           dt.timedelta(hours=1))
    assert session_end(platform="ios", version="2.0", last_seen=seen, now=T0,
                       idle_seconds=None, releases=[]) is None
    assert idle_expired(seen, T0, 7200) and not idle_expired(seen, T0, 7201)
    assert not idle_expired(seen, late, None)


def test_notice_results_and_active_key():
    assert notice_result(True, False) == "sent"
    assert notice_result(False, True) == "token_removed"
    assert notice_result(False, False) == "provider_error"
    assert active_key("a", "u") != active_key("a", "u2") != active_key("b", "u")


def test_report_range():
    now = T0
    assert report.time_range(None, None, now) == (now - dt.timedelta(days=1), now)
    frm, to = report.time_range("2026-11-30T00:00:00Z", "2026-12-01T02:00:00+02:00", now)
    assert frm == dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
    assert to == dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    assert report.time_range("2026-11-30T00:00:00", None, now)[0].tzinfo is not None
    for bad in (("yesterday", None), (None, "2026-13-01"), ("2026-12-02", "2026-12-01")):
        with pytest.raises(report.RangeError):
            report.time_range(*bad, now)


def test_csv_opens_in_a_spreadsheet():
    row = {"session_id": 1, "app": "a", "user": "=HYPERLINK(\"x\")", "platform": "mobile",
           "app_type": "Mobile", "app_version": "2.17.60", "device_id": "d,1",
           "device_model": "iPhone 8 Plus", "os": "ios", "os_version": "14.8",
           "login_at": T0, "logout_at": None, "ended": None}
    text = report.to_csv([row])
    assert text.startswith("\ufeffsession_id,app,user,")
    lines = text[1:].split("\r\n")
    assert lines[1].split(",")[2] == "'=HYPERLINK(\"\"x\"\")\"" or "'=HYPERLINK" in lines[1]
    assert '"d,1"' in lines[1] and "2026-12-01T08:00:00+00:00" in lines[1]
    assert lines[2] == ""


def test_logged_out_users_are_not_reachable():
    devices = [DeviceFacts(1, "1.0", True, "in"), DeviceFacts(2, "1.0", True, "out"),
               DeviceFacts(3, "1.0", True, "never-logged-in")]
    assert [d.id for d in notice_targets(devices, parse_version("2.0"), set(), {"out"})] == [
        1, 3]
