"""Callback requests, the pure part (issue 19): what an attempt's AstDB entry means, where a
request goes after an attempt (retry, failed, expired, completed), windows per queue, and the
``callbacks:`` section's errors with their file:line."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ivr_engine.callbacks.policy import (
    ANSWERED,
    BUSY,
    CANCELLED,
    COMPLETED,
    EXPIRED,
    FAILED,
    INVALID_NUMBER,
    LOST,
    NO_AGENT,
    NO_ANSWER,
    REPLACE_SECONDS,
    REQUESTED,
    UNREACHABLE,
    QueuePolicy,
    after_attempt,
    api_result,
    dialable,
    outcome_of,
    parse_window,
    window_schedule,
)
from ivr_engine.config import ConfigError, parse_config
from tests.unit.test_config import FIXTURE

FIXTURE_TEXT = FIXTURE.read_text()

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize("value, outcome", [
    (None, NO_AGENT), ("", NO_AGENT), ("DIALING", CANCELLED), ("ANSWER", ANSWERED),
    ("BUSY", BUSY), ("NOANSWER", NO_ANSWER), ("CHANUNAVAIL", UNREACHABLE),
    ("CONGESTION", UNREACHABLE), ("CANCEL", CANCELLED), ("SOMETHINGNEW", UNREACHABLE)])
def test_the_astdb_entry_of_an_attempt_says_its_outcome(value, outcome):
    assert outcome_of(value) == outcome


def test_answered_completes_the_request():
    p = QueuePolicy("sales", attempts=3)
    assert after_attempt(p, 0, ANSWERED, T0, T0).state == COMPLETED
    nxt = after_attempt(p, 1, ANSWERED, T0, T0)
    assert (nxt.state, nxt.attempts, nxt.not_before) == (COMPLETED, 2, None)


@pytest.mark.parametrize("outcome", [BUSY, NO_ANSWER, UNREACHABLE, CANCELLED])
def test_a_customer_not_reached_is_tried_again_until_the_attempts_are_spent(outcome):
    p = QueuePolicy("sales", attempts=3, retry_seconds=300)
    first = after_attempt(p, 0, outcome, T0, T0)
    assert (first.state, first.attempts) == (REQUESTED, 1)
    assert first.not_before == T0 + dt.timedelta(seconds=300)
    second = after_attempt(p, 1, outcome, T0, T0)
    assert (second.state, second.attempts) == (REQUESTED, 2)
    last = after_attempt(p, 2, outcome, T0, T0)
    assert (last.state, last.attempts, last.not_before) == (FAILED, 3, None)


def test_no_agent_is_not_an_attempt_and_goes_back_to_the_queue_at_once():
    p = QueuePolicy("sales", attempts=1)
    for _ in range(5):  # agents busy for ever: the request waits, it never fails for it
        nxt = after_attempt(p, 0, NO_AGENT, T0, T0)
        assert (nxt.state, nxt.attempts, nxt.not_before) == (REQUESTED, 0, T0)


def test_a_lost_placement_is_placed_again_later_without_counting():
    nxt = after_attempt(QueuePolicy("sales", attempts=1), 0, LOST, T0, T0)
    assert (nxt.state, nxt.attempts) == (REQUESTED, 0)
    assert nxt.not_before == T0 + dt.timedelta(seconds=REPLACE_SECONDS)


def test_a_retry_past_the_expiry_expires_the_request_and_a_bad_number_fails_it():
    p = QueuePolicy("sales", attempts=5, retry_seconds=600, expire_after_seconds=3600)
    made = T0 - dt.timedelta(minutes=55)
    assert after_attempt(p, 1, BUSY, T0, made).state == EXPIRED
    assert after_attempt(p, 1, BUSY, T0, T0).state == REQUESTED
    assert after_attempt(p, 0, INVALID_NUMBER, T0, T0).state == FAILED
    assert p.expired(made, T0 + dt.timedelta(minutes=5))
    assert not p.expired(made, T0 + dt.timedelta(minutes=4))


def test_api_outcomes_and_dialable_numbers():
    assert api_result(ANSWERED) == COMPLETED
    assert {api_result(o) for o in (BUSY, NO_ANSWER, UNREACHABLE, CANCELLED)} == {FAILED}
    assert dialable("+15551230000") and dialable("0612345678")
    assert not any(dialable(n) for n in ("", "anonymous", "+", "1", "+1555;x", "+1 555",
                                         "1" * 21))


def test_windows_are_weekly_hours_in_the_queue_timezone():
    paris = ZoneInfo("Europe/Paris")
    s = window_schedule("sales", ["mon-fri 09:00-12:00 14:00-18:00", "sat 10:00-13:00"],
                        paris)
    p = QueuePolicy("sales", window=s)
    local = lambda *a: dt.datetime(*a, tzinfo=paris)  # noqa: E731
    assert p.open(local(2026, 12, 7, 9, 0))          # Monday 09:00 Paris
    assert not p.open(local(2026, 12, 7, 12, 30))    # the lunch gap
    assert p.open(local(2026, 12, 7, 17, 59))
    assert not p.open(local(2026, 12, 7, 18, 0))
    assert p.open(local(2026, 12, 12, 12, 0))        # Saturday
    assert not p.open(local(2026, 12, 13, 12, 0))    # Sunday
    # 08:30 UTC is 09:30 in Paris (winter): open
    assert p.open(dt.datetime(2026, 12, 7, 8, 30, tzinfo=UTC))
    assert QueuePolicy("any").open(T0)  # no window: any time


@pytest.mark.parametrize("text, message", [
    ("mon-fri", "is not a window like"),
    ("funday 09:00-10:00", "'funday' is not a day"),
    ("mon 10:00-09:00", "start must be before end"),
    ("mon 09:00-12:00 11:00-13:00", "overlap"),
    (42, "is not a window like")])
def test_bad_windows_say_why(text, message):
    with pytest.raises(ValueError, match=message):
        parse_window(text)
    with pytest.raises(ValueError, match="a day a window already has"):
        window_schedule("q", ["mon-fri 09:00-10:00", "fri 11:00-12:00"], UTC)


def _config(extra: str):
    return parse_config(FIXTURE_TEXT + extra, "cb.yaml", {})


def test_callbacks_section_compiles_one_policy_per_queue():
    cfg = _config("""
callbacks:
  dial: "PJSIP/{number}@carrier"
  queues:
    support: {window: "mon-fri 09:00-18:00", timezone: Europe/Paris, attempts: 2,
              retry_seconds: 60, caller_id: "+15551230000"}
    sales: {schedule: weekdays}
""")
    support, sales = cfg.callbacks["support"], cfg.callbacks["sales"]
    assert (support.attempts, support.retry_seconds, support.caller_id) == (2, 60, "+15551230000")
    assert support.open(dt.datetime(2026, 12, 7, 8, 30, tzinfo=UTC))
    assert sales.window is not None and sales.window.name == "weekdays"
    assert [w.path for w in cfg.warnings if w.path.startswith("callbacks")] == \
        ["callbacks.queues.sales"]  # no callback:sales destination in the tree


# (the YAML added after the fixture, [(line within it, 1-based; the message's start)])
BAD = [
    ("callbacks:\n  queues:\n    support: {attempts: 0}\n",
     [(3, "callbacks.queues.support.attempts: Input should be greater than or equal to 1")]),
    ('callbacks:\n  dial: "PJSIP/{num}@carrier"\n  queues:\n    support: {}\n',
     [(2, "callbacks.dial: 'PJSIP/{num}@carrier' must name {number} once, and no other "
          "field (e.g. PJSIP/{number}@carrier)")]),
    ('callbacks:\n  queues:\n    support: {window: "mon-fri 09:00-18:00", schedule: x}\n',
     [(3, "callbacks.queues.support: give either window or schedule, not both")]),
    ('callbacks:\n  dial: "PJSIP/{number}@c"\n  queues:\n    support:\n      window: '
     '["mon-fri 09:00-18:00", "fri 19:00-20:00"]\n',
     [(5, "callbacks.queues.support.window: 'fri 19:00-20:00' gives a day a window already "
          "has")]),
    ("callbacks:\n  queues:\n    support: {schedule: nope}\n",
     [(1, "callbacks.dial: required when callbacks.queues lists queues: the Dial() string "
          "that reaches a customer, e.g. PJSIP/{number}@carrier"),
      (3, "callbacks.queues.support.schedule: schedule 'nope' is not defined under "
          "schedules")]),
    ("webhooks:\n  - url: http://127.0.0.1:9/hook\n    events: [call.left]\n",
     [(3, "webhooks.0.events.0: Input should be 'call.queued'")]),
]


@pytest.mark.parametrize("extra, expected", BAD)
def test_callbacks_and_webhooks_errors_say_where(extra, expected):
    base = FIXTURE_TEXT.count("\n")  # the fixture's last line; ours start after it
    with pytest.raises(ConfigError) as exc:
        _config(extra)
    got = [str(i) for i in exc.value.issues]
    for line, message in expected:
        want = f"cb.yaml:{base + line}: {message}"
        assert any(g.startswith(want) for g in got), (want, got)
