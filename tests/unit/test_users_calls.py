"""Database users on the call path (issue 19): the one resolver (database first, then the
config's ``users:``), the real call manager, sessions, ringer and contact watcher over the
scripted ARI of test_callsafe_session.py, on a real Store (SQLite and PostgreSQL).

- a database user not in the file is rung; a database user of the same name as a config
  user wins (its ringing device is the one rung);
- the user's own switch applies from the next call;
- the database failing or not answering within ``call_deadline_seconds``: the config's
  user of that name is rung; nobody of that name: the caller goes to the dialplan fallback;
- RFC 8599 bindings find a database user by its mobile endpoint.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from sqlalchemy.exc import OperationalError

from ivr_engine.calls.manager import Calls
from ivr_engine.calls.registry import CallRegistry
from ivr_engine.calls.session import CallServices
from ivr_engine.config import parse_config
from ivr_engine.users import directory
from ivr_engine.users.records import parse_user
from ivr_engine.wakeup.contacts import PushBinding

from .test_callsafe_session import CID, CONFIG, Node, ScriptedAri, event, played, press, until

NOW = dt.datetime(2026, 12, 10, 12, tzinfo=dt.timezone.utc)
DEADLINE = 0.3


def users_config():
    text = CONFIG.read_text()
    text = text.replace('      "7": callback:support\n',
                        '      "7": callback:support\n      "8": user:dana\n', 1)
    text = text.replace("  timezone: UTC\n",
                        f"  timezone: UTC\n  database: {{call_deadline_seconds: {DEADLINE}}}\n",
                        1)
    return parse_config(text, str(CONFIG), {})


class SlowUsers:
    """A database that does not answer (``hang``) or fails at once."""

    def __init__(self, hang: bool):
        self.hang = hang

    async def get(self, name):
        if self.hang:
            await asyncio.sleep(30)
        raise OperationalError("SELECT", {}, Exception("database is locked"))


class StoreView:
    """The Store the calls see, with another ``users``."""

    def __init__(self, store, users):
        self._store, self.users = store, users

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.fixture
async def world(store):
    config = users_config()
    ari = ScriptedAri()
    node = Node(ari, config)
    services = CallServices(store=store, registry=CallRegistry())
    calls = Calls(lambda: config, services)
    node.calls = calls
    task = asyncio.get_running_loop().create_task(calls.run())
    await until(lambda: calls._tg is not None, "the calls' TaskGroup")
    yield ari, node, calls, services, config
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def ring(ari, node, calls, key: str) -> None:
    ev = event("StasisStart", CID, args=["pstn", "300"])
    assert calls.start(node, ev)
    await until(lambda: played(ari) == 1, "the top menu's prompt")
    press(node, key)


def legs(ari) -> list[str]:
    return [a[0] for a, _ in ari.calls("create_channel")]


def fell_back(ari) -> bool:
    return any(k.get("context") == "ivr-engine-fallback"
               for _, k in ari.calls("continue_in_dialplan"))


async def test_a_database_user_not_in_the_file_is_rung(world, store):
    ari, node, calls, _, config = world
    await store.users.put(parse_user("dana", {"ringing_device": "uc", "uc_endpoint": "bob"}),
                          NOW)
    await ring(ari, node, calls, "8")
    await until(lambda: legs(ari), "dana's UC leg")
    assert legs(ari) == ["PJSIP/bob"] and not fell_back(ari)


async def test_the_database_user_wins_over_the_files(world, store):
    """alice is a sleeping phone app in the file (pushed, then waited for); in the database
    her calls ring her UC endpoint."""
    ari, node, calls, _, _ = world
    await store.users.put(parse_user("alice", {"ringing_device": "uc", "uc_endpoint": "bob"}),
                          NOW)
    await ring(ari, node, calls, "3")
    await until(lambda: legs(ari), "alice's UC leg")
    assert legs(ari) == ["PJSIP/bob"] and node.contacts.waiting() == 0


async def test_the_users_switch_applies_from_the_next_call(world, store):
    ari, node, calls, _, _ = world
    await store.users.put(parse_user("dana", {"ringing_device": "uc+mobile",
                                              "uc_endpoint": "bob", "mobile_endpoint": "dm",
                                              "app": "shop"}), NOW)
    await ring(ari, node, calls, "8")
    await until(lambda: legs(ari) and node.contacts.waiting() == 1, "UC leg + phone wait")
    assert legs(ari) == ["PJSIP/bob"]  # the desk at once, the phone waited for
    node.dispatcher(event("ChannelDestroyed", CID))
    await until(lambda: CID not in calls.sessions, "the first call ended")
    assert await store.users.set_device("dana", "mobile", NOW)
    ari.log.clear()
    await ring(ari, node, calls, "8")
    await until(lambda: node.contacts.waiting() == 1, "the phone waited for")
    assert legs(ari) == []  # mobile only: no UC leg


@pytest.mark.parametrize("hang", [False, True], ids=["error", "deadline"])
async def test_a_database_that_fails_rings_the_files_user(world, store, hang, caplog):
    ari, node, calls, services, _ = world
    services.store = StoreView(store, SlowUsers(hang))
    t0 = time.monotonic()
    await ring(ari, node, calls, "4")  # bob: uc in the file
    await until(lambda: legs(ari), "bob's UC leg")
    assert legs(ari) == ["PJSIP/bob"]
    assert time.monotonic() - t0 < DEADLINE + 1.5
    assert "user: " in caplog.text and "ringing user bob as the config file has it" in \
        caplog.text


async def test_nobody_of_that_name_sends_the_caller_to_the_fallback(world, store, caplog):
    ari, node, calls, services, _ = world
    await ring(ari, node, calls, "8")  # dana: in the menu, in no directory
    await until(lambda: fell_back(ari), "the dialplan fallback")
    assert legs(ari) == [] and "is neither in the database nor under users:" in caplog.text
    calls_before = len(ari.log)
    services.store = StoreView(store, SlowUsers(False))  # and the database failing
    node.dispatcher(event("ChannelDestroyed", CID))
    await until(lambda: CID not in calls.sessions, "the first call ended")
    await ring(ari, node, calls, "8")
    await until(lambda: len([1 for n, _, k in ari.log[calls_before:]
                             if n == "continue_in_dialplan"]) == 1, "the fallback again")


async def test_a_database_user_the_config_no_longer_fits_goes_to_the_fallback(world, store,
                                                                              caplog):
    ari, node, calls, _, _ = world
    await store.users.put(parse_user("dana", {"mobile_endpoint": "dm", "app": "gone"}), NOW)
    await ring(ari, node, calls, "8")
    await until(lambda: fell_back(ari), "the dialplan fallback")
    assert "app 'gone' is not defined under apps" in caplog.text


async def test_the_resolver_order(store):
    cfg = users_config()
    assert (await directory.find(cfg, store.users, "alice")).source == "config"
    assert await directory.find(cfg, store.users, "dana") is None
    await store.users.put(parse_user("alice", {"mobile_endpoint": "alice-2", "app": "shop"}),
                          NOW)
    found = await directory.find(cfg, store.users, "alice")
    assert (found.source, found.record.mobile_endpoint) == ("database", "alice-2")
    assert found.config_at == f"{CONFIG}:{cfg.user_lines['alice']}"
    # by endpoint: the database's alice has alice-2; the file's "alice" endpoint is hers no
    # longer (the database's user of that name replaces the file's)
    assert (await directory.by_mobile_endpoint(cfg, store.users, "alice-2")).source == \
        "database"
    assert await directory.by_mobile_endpoint(cfg, store.users, "alice") is None
    await store.users.delete("alice")
    assert (await directory.by_mobile_endpoint(cfg, store.users, "alice")).source == "config"


async def test_an_rfc8599_binding_finds_a_database_user(world, store):
    ari, node, _, _, _ = world
    await store.users.put(parse_user("dana", {"mobile_endpoint": "dm", "app": "shop"}), NOW)
    node.contacts.binder.store = store
    binder = asyncio.get_running_loop().create_task(node.contacts.binder.run())
    try:
        node.contacts.binder._bindings.put_nowait(("dm", PushBinding("fcm", "t" * 40, None,
                                                                     "android", False)))
        deadline = time.monotonic() + 5
        while not await store.devices.for_user("dana", "shop"):
            assert time.monotonic() < deadline, "dana's device never stored"
            await asyncio.sleep(0.02)
    finally:
        binder.cancel()
        await asyncio.gather(binder, return_exceptions=True)


async def test_with_kamailio_the_app_is_rung_through_kamailio_on_its_event(world, store):
    """engine.registrar.kind kamailio: the wait is the registrar's, the evapi event rings the
    phone as PJSIP/<aor>@kamailio (the desk phone stays PJSIP/<endpoint> on the node)."""
    import json

    from ivr_engine.config.model_registrar import RegistrarSettings
    from ivr_engine.wakeup.kamailio import KamailioRegistrations

    class NobodyRegistered(KamailioRegistrations):
        async def lookup(self, aor):
            return []

    ari, node, calls, _, _ = world
    node.contacts = NobodyRegistered(RegistrarSettings(
        kind="kamailio", events="127.0.0.1:1", rpc="http://127.0.0.1:1/RPC"), None,
        lambda: None)
    await store.users.put(parse_user("dana", {"ringing_device": "uc+mobile",
                                              "uc_endpoint": "bob", "mobile_endpoint": "dm",
                                              "app": "shop"}), NOW)
    await ring(ari, node, calls, "8")
    await until(lambda: legs(ari) and node.contacts.waiting() == 1, "UC leg + phone wait")
    assert legs(ari) == ["PJSIP/bob"]
    node.contacts.handle(json.dumps({"event": "registered", "aor": "dm", "expires": 60,
                                     "contact": "sip:dm@127.0.0.30:5070"}).encode())
    await until(lambda: len(legs(ari)) == 2, "the phone's leg")
    assert legs(ari) == ["PJSIP/bob", "PJSIP/dm@kamailio"]
