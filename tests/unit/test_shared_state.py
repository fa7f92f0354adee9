"""Shared state between engines (issue 18), the parts that are pure logic: the engine's name
and advertised URL in the config, which requests go to another engine, the in-memory guard
behind the shared interface, and a fallback caller whose try cannot be counted (the guard's
database away) is never looked up."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import textwrap
from types import SimpleNamespace

import pytest

from ivr_engine.apps.guard import Attempt, GuessLimits, Kind
from ivr_engine.apps.guard_db import DatabaseGuard, MemoryGuard, guard_for
from ivr_engine.calls import entry
from ivr_engine.calls.owners import FORWARDED_BY, Owners
from ivr_engine.config import ConfigError, parse_config
from ivr_engine.config.model_nodes import engine_name
from ivr_engine.deadlines import CallerWaitFailed

from .test_config_nodes import TREE, TWO_NODES

NOW = dt.datetime(2026, 12, 4, tzinfo=dt.timezone.utc)


def engine(text: str):
    return parse_config(textwrap.dedent(text) + TREE, "t.yaml", {}).engine


# ------------------------------------------------------------------ config


def test_engine_name_is_configured_or_its_nodes_names():
    assert engine_name(parse_config(TWO_NODES, "t.yaml", {}).engine) == "node-a+node-b"
    assert engine_name(engine("engine:\n  ari: {password: s}\n")) == "asterisk"
    assert engine_name(engine("engine:\n  name: east-1\n  ari: {password: s}\n")) == "east-1"


@pytest.mark.parametrize("api, url", [
    ("{}", "http://127.0.0.1:8080"),
    ("{listen: '0.0.0.0:8081'}", "http://127.0.0.1:8081"),
    ("{listen: '127.0.0.1:8081', admin_listen: '10.0.0.4:9090'}", "http://10.0.0.4:9090"),
    ("{listen: '[::]:8082'}", "http://127.0.0.1:8082"),
    ("{advertise: 'https://engine-a.internal:8443/'}", "https://engine-a.internal:8443"),
])
def test_advertised_url_defaults_to_the_admin_listener(api, url):
    assert engine(f"engine:\n  ari: {{password: s}}\n  api: {api}\n").api.advertised == url


@pytest.mark.parametrize("bad", ["engine-a:8080", "http://engine-a", "http://a:8080/v1",
                                 "ftp://a:21", "http://user@a:8080"])
def test_a_bad_advertised_url_is_refused_at_its_line(bad):
    with pytest.raises(ConfigError) as exc:
        engine(f"engine:\n  ari: {{password: s}}\n  api:\n    advertise: '{bad}'\n")
    (issue,) = [str(i) for i in exc.value.issues if i.severity == "error"]
    assert issue.startswith("t.yaml:4: engine.api.advertise: ") and "http(s)://host:port" \
        in issue, issue


# ------------------------------------------------------------------ owners


def _request(headers: dict | None = None):
    return SimpleNamespace(headers=headers or {})


@pytest.mark.parametrize("owner, state, headers, expected", [
    ("node-b", "ivr", {}, "node-b"),  # another engine's live call: forwarded
    ("node-b", "handed-off", {}, "node-b"),  # left the IVR: its node's AMI is the owner's
    ("node-a", "ivr", {}, None),  # ours
    (None, "ivr", {}, None),  # a record from before revision 0013
    ("node-b", "ended", {}, None),  # nothing to move: answered here (409 ended)
    ("node-b", "ivr", {FORWARDED_BY: "node-c"}, None),  # never forwarded twice
])
def test_which_requests_go_to_another_engine(owner, state, headers, expected):
    owners = Owners("node-a", directory=object(), config=lambda: None)  # type: ignore[arg-type]
    info = SimpleNamespace(engine=owner, state=state)
    assert owners.elsewhere(info, _request(headers)) == expected
    assert Owners("node-a", None, lambda: None).elsewhere(info, _request()) is None


# ------------------------------------------------------------------ guards


def test_sqlite_keeps_the_guard_in_memory_postgresql_shares_it():
    assert isinstance(guard_for(None), MemoryGuard)
    sqlite = SimpleNamespace(db=SimpleNamespace(dialect="sqlite"))
    assert isinstance(guard_for(sqlite), MemoryGuard) and not guard_for(sqlite).shared
    pg = SimpleNamespace(db=SimpleNamespace(dialect="postgresql", sessions=None))
    assert isinstance(guard_for(pg), DatabaseGuard) and guard_for(pg).shared


async def test_memory_guard_keeps_todays_rules():
    clock = [0.0]
    guard = MemoryGuard(monotonic=lambda: clock[0])
    limits = GuessLimits(per_caller=2, per_app=3, window_seconds=60)
    for who in ("+1", "+1"):
        attempt = await guard.admit("app", who, Kind.TOKEN, limits, NOW)
        assert isinstance(attempt, Attempt)
        await guard.failed(attempt)
    assert await guard.admit("app", "+1", Kind.TOKEN, limits, NOW) == \
        "2 tries from +1 in the last 60 s"
    assert await guard.long_tokens("app", ["1", "+1"], limits, NOW)
    ok = await guard.admit("app", "+2", Kind.TOKEN, limits, NOW)
    await guard.succeeded(ok)  # given back: the app is still at 2
    assert isinstance(await guard.admit("app", "+3", Kind.TOKEN, limits, NOW), Attempt)
    assert "hardens" in await guard.admit("app", "+4", Kind.TOKEN, limits, NOW)
    assert await guard.long_tokens("app", [], limits, NOW)
    clock[0] = 61
    assert not await guard.long_tokens("app", ["+1"], limits, NOW)


class _AwayGuard:
    """The shared guard with its database away: asyncpg's own error on connect."""

    shared = True

    def __init__(self):
        self.admitted = 0

    async def admit(self, *args):
        self.admitted += 1
        raise ConnectionRefusedError(111, "Connect call failed ('/tmp/sock/.s.PGSQL.5432')")


async def test_a_try_that_cannot_be_counted_is_never_looked_up(caplog):
    consumed: list[str] = []

    async def consume_token(*args):
        consumed.append(args[1])
        return None

    guard = _AwayGuard()
    guessing = SimpleNamespace(per_caller=3, per_app=30, window_seconds=600)
    async with asyncio.TaskGroup() as tg:
        call = SimpleNamespace(
            services=SimpleNamespace(token_guard=guard, store=SimpleNamespace(
                intents=SimpleNamespace(consume_token=consume_token)), offline=None),
            config=SimpleNamespace(
                model=SimpleNamespace(apps={"shop": SimpleNamespace(
                    fallback=SimpleNamespace(guessing=guessing))}),
                engine=SimpleNamespace(database=SimpleNamespace(call_deadline_seconds=2.0))),
            start=SimpleNamespace(channel=SimpleNamespace(caller_number="+15550001")),
            spawn=tg.create_task, clock=lambda: NOW, channel_id="chan-9")
        app = SimpleNamespace(app="shop", code_digits=None, hardened_digits=0)
        with caplog.at_level(logging.WARNING, logger="ivr_engine.calls"), \
                pytest.raises(CallerWaitFailed) as failed:
            await entry._look_up(call, app, "123456", "fallback")
    assert failed.value.wait == "token-guard" and failed.value.reason == "error"
    assert guard.admitted == 1 and consumed == []  # fails closed: the token was not looked up
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("call chan-9: token-guard: the database failed: "
                           "ConnectionRefusedError")
    assert line.endswith("its token is not checked (fails closed): the caller goes to the "
                         "fallback")


# ------------------------------------------------------------------ records, engines


async def test_call_records_keep_their_node_and_engine(store):
    from ivr_engine.calls.registry import CallInfo

    info = CallInfo(id="node-b-1733300000.7", channel_name="PJSIP/carrier-1", caller="+1",
                    entry="did:100", via="did", app=None, root_menu="top", language="en",
                    node="node-b", engine="node-b")
    await store.calls.save([info])
    back = await store.calls.get(info.id)
    assert (back.node, back.engine) == ("node-b", "node-b")
    await store.engines.announce("node-b", "http://127.0.0.1:8082", NOW)
    await store.engines.announce("node-b", "http://127.0.0.3:8082", NOW)  # moved: replaced
    row = await store.engines.get("node-b")
    assert (row.api_url, row.seen_at) == ("http://127.0.0.3:8082", NOW)
    assert await store.engines.get("node-z") is None


async def test_two_engines_of_one_name_are_named_in_the_log(store, caplog):
    from ivr_engine.calls.owners import announce_loop

    await store.engines.announce("asterisk", "http://127.0.0.1:8081", NOW)
    with caplog.at_level(logging.ERROR, logger="ivr_engine.api"):
        loop = asyncio.ensure_future(announce_loop(
            store.engines, "asterisk", lambda: "http://127.0.0.1:8082",
            lambda: NOW + dt.timedelta(seconds=5)))
        try:
            for _ in range(200):
                row = await store.engines.get("asterisk")
                if row.api_url.endswith(":8082"):
                    break
                await asyncio.sleep(0.01)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
    assert row.api_url == "http://127.0.0.1:8082"
    assert "engine name 'asterisk' is also used by the engine at http://127.0.0.1:8081" \
        in caplog.text


async def test_a_request_is_relayed_to_the_owner_and_its_answer_back(store):
    """A real HTTP server stands for engine a: what it receives (b's token, the body, the
    forwarding mark), what b's client gets back (status, problem, Retry-After, who answered),
    and an owner that does not answer in time."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer, make_mocked_request

    from ivr_engine.calls.owners import ANSWERED_BY, OwnerDown

    seen: list[tuple] = []
    slow = asyncio.Event()

    async def transfer(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization"),
                     request.headers.get(FORWARDED_BY), await request.json()))
        if request.match_info["id"] == "slow":
            await slow.wait()
        return web.json_response({"status": "busy", "reason": "busy"}, status=503,
                                 headers={"Retry-After": "2"},
                                 content_type="application/problem+json")

    app = web.Application()
    app.router.add_post("/v1/calls/{id}/transfer", transfer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        await store.engines.announce("node-a", str(server.make_url("")).rstrip("/"), NOW)
        token = "b-admin-token-000000000000000000000000000"
        cfg = SimpleNamespace(engine=SimpleNamespace(api=SimpleNamespace(
            admin_token=SimpleNamespace(get_secret_value=lambda: token))))
        owners = Owners("node-b", store.engines, lambda: cfg, answer_seconds=0.5)
        body = b'{"to": "queue:sales"}'

        def request(call: str):
            req = make_mocked_request("POST", f"/v1/calls/{call}/transfer", headers={
                "Authorization": "Bearer client-token", "Content-Type": "application/json"})
            req._read_bytes = body  # what the client sent
            return req

        r = await owners.forward(request("node-a-1.1"), "node-a")
        assert (r.status, r.headers["Retry-After"], r.headers[ANSWERED_BY]) == \
            (503, "2", "node-a")
        assert r.content_type == "application/problem+json"
        assert seen == [("/v1/calls/node-a-1.1/transfer", f"Bearer {token}", "node-b",
                         {"to": "queue:sales"})]
        with pytest.raises(OwnerDown) as down:
            await owners.forward(request("slow"), "node-a")
        assert down.value.detail.startswith("the engine 'node-a' holding the call did not "
                                            "answer at http://127.0.0.1:")
        assert down.value.detail.endswith("(no answer in time)")
        with pytest.raises(OwnerDown) as unknown:
            await owners.forward(request("x"), "node-z")
        assert "has never announced its API URL" in unknown.value.detail
    finally:
        slow.set()
        await server.close()
