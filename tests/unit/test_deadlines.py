"""What a caller waits for on the database ends by its deadline: the query's answer, or
CallerWaitFailed at the deadline (counted, logged) even when the driver takes longer to give
the cancelled query up; a database error is the same fallback, a bug is not hidden. And the
config's rules for ``engine.database`` / ``engine.supervisor``, with their lines."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.exc import OperationalError

from ivr_engine import metrics
from ivr_engine.deadlines import CallerWaitFailed, caller_wait
from ivr_engine.supervisor import RestartPolicy

from .test_config import BASE, errors


def fallbacks(wait: str, reason: str) -> float:
    return metrics.REGISTRY.get_sample_value(
        "ivr_caller_wait_fallbacks_total", {"wait": wait, "reason": reason}) or 0.0


async def test_the_answer_within_the_deadline():
    async def query() -> str:
        await asyncio.sleep(0.01)
        return "intent"

    async with asyncio.TaskGroup() as tg:
        assert await caller_wait(tg.create_task, 1.0, "token", "ch-1", query()) == "intent"


async def test_past_the_deadline_the_caller_does_not_wait_for_the_cleanup(caplog):
    """A driver whose cancelled query takes 1 s more to give up (asyncpg on a stopped
    server): the caller is released at the deadline, the call's TaskGroup collects it."""
    released = asyncio.Event()
    before = fallbacks("token", "deadline")

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(asyncio.sleep(1.0))  # the driver's slow clean-up
            released.set()

    t0 = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        with pytest.raises(CallerWaitFailed) as exc:
            await caller_wait(tg.create_task, 0.2, "token", "ch-2", stuck())
        waited = time.monotonic() - t0
        assert not released.is_set()
    assert released.is_set()  # owned by the call's TaskGroup: collected, never orphaned
    assert 0.2 <= waited < 0.6, waited
    assert exc.value.reason == "deadline" and exc.value.wait == "token"
    assert fallbacks("token", "deadline") == before + 1
    assert "call ch-2: token: no answer from the database within 0.2 s; the caller goes " \
        "to the fallback" in caplog.text


async def test_a_database_error_is_the_same_fallback_and_a_bug_is_not_hidden():
    before = fallbacks("callback", "error")

    async def locked() -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    async def bug() -> None:
        raise KeyError("nope")

    async with asyncio.TaskGroup() as tg:
        with pytest.raises(CallerWaitFailed) as exc:
            await caller_wait(tg.create_task, 1.0, "callback", "ch-3", locked())
        assert exc.value.reason == "error"
        with pytest.raises(KeyError):  # not the database: the session's own rescue
            await caller_wait(tg.create_task, 1.0, "callback", "ch-3", bug())
    assert fallbacks("callback", "error") == before + 1


def test_database_and_supervisor_settings_are_checked_with_their_lines():
    text = BASE.replace("    password: secret\n", "    password: secret\n  database:\n"
                        "    call_deadline_seconds: 4\n  supervisor:\n"
                        "    restart_backoff_seconds: 10\n    restart_backoff_max_seconds: 5\n")
    assert errors(text) == [
        "t.yaml:8: engine.supervisor.restart_backoff_max_seconds: must be at least "
        "restart_backoff_seconds (10)"]
    text = BASE.replace("    password: secret\n", "    password: secret\n  database:\n"
                        "    call_deadline_seconds: 4\n")
    assert errors(text) == [
        "t.yaml:5: engine.database.call_deadline_seconds: must be below "
        "engine.watchdog.grace_seconds (3): a caller waiting on the database would meet "
        "Asterisk's watchdog before the fallback"]


def test_restart_policy_from_the_settings():
    from ivr_engine.config import parse_config

    cfg = parse_config(BASE, "t.yaml", {})
    p = RestartPolicy.from_settings(cfg.model.engine.supervisor)
    assert (p.backoff_seconds, p.backoff_max_seconds, p.failures, p.window_seconds,
            p.stable_seconds) == (1.0, 60.0, 5, 300.0, 30.0)
    assert cfg.model.engine.database.call_deadline_seconds == 2.0
