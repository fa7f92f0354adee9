"""The callback routes (issue 19) through the in-process API on SQLite and PostgreSQL: the
list with its filters and pages, claim (one winner, 409 for the others), complete with the
claim's token only, problem documents; a completed or failed callback is delivered to the
webhooks (a real local receiver) signed like every event; ``ivr-engine callbacks list``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from ivr_engine.calls.webhook import ContextNotifier, Webhooks
from ivr_engine.cli import main as cli_main
from tests.support.hooks import HookReceiver

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    FIXTURE,
    api_fixture,
    assert_problem,
)

T0 = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.timezone.utc)
SECRET = "hook-secret-for-callbacks-0123456789abcdef"


async def add(api, n: int = 1, queue: str = "sales") -> list:
    repo = api.parts.store.callbacks
    return [await repo.add(caller=f"+1555000{i:04d}", queue=queue, language="fr",
                           entry="app:customer", path="cust/sales", channel_id=f"chan-{i}",
                           app="customer", user="alice", verified=True, now=T0)
            for i in range(n)]


async def test_list_filters_and_pages(api):
    rows = await add(api, 3) + await add(api, 2, queue="support")
    r = await api.get("/v1/callbacks?limit=2", key=ADMIN_TOKEN)
    assert r.status == 200, r.body
    page = r.json()
    assert page["count"] == 2 and page["next_after"] == rows[1].id
    first = page["callbacks"][0]
    assert first == {
        "id": rows[0].id, "state": "requested", "queue": "sales", "caller": "+15550000000",
        "language": "fr", "app": "customer", "user": "alice", "verified": True,
        "entry": "app:customer", "path": ["cust", "sales"], "call_id": "chan-0",
        "created_at": T0.isoformat(), "updated_at": T0.isoformat(), "claimed_by": None,
        "claimed_at": None, "attempts": 0, "not_before": None, "last_outcome": None,
        "note": None, "completed_at": None}
    r = await api.get(f"/v1/callbacks?after={rows[1].id}&limit=2", key=ADMIN_TOKEN)
    assert [c["id"] for c in r.json()["callbacks"]] == [rows[2].id, rows[3].id]
    r = await api.get("/v1/callbacks?queue=support&state=requested", key=ADMIN_TOKEN)
    assert [c["id"] for c in r.json()["callbacks"]] == [rows[3].id, rows[4].id]
    assert r.json()["next_after"] is None
    doc = assert_problem(await api.get("/v1/callbacks?state=pending", key=ADMIN_TOKEN), 422)
    assert doc["field"] == "state"
    assert_problem(await api.get("/v1/callbacks", key="not-the-admin-token"), 401)
    r = await api.get(f"/v1/callbacks/{rows[4].id}", key=ADMIN_TOKEN)
    assert r.status == 200 and r.json()["queue"] == "support"
    for bad in ("99999", "x1", "1e3", "%C2%B2"):
        doc = assert_problem(await api.get(f"/v1/callbacks/{bad}", key=ADMIN_TOKEN), 404)
        assert doc["detail"] == "no such callback request"


async def test_claim_once_then_complete_with_the_claim(api):
    (row,) = await add(api)
    url = f"/v1/callbacks/{row.id}"
    r = await api.post(f"{url}/claim", {"agent": "ann"}, key=ADMIN_TOKEN)
    assert r.status == 200, r.body
    claimed = r.json()
    assert (claimed["state"], claimed["claimed_by"]) == ("claimed", "api:ann")
    assert len(claimed["claim"]) == 32
    doc = assert_problem(await api.post(f"{url}/claim", {"agent": "bob"}, key=ADMIN_TOKEN),
                         409)
    assert doc["detail"] == f"callback {row.id} is claimed (claimed by api:ann)"
    doc = assert_problem(await api.post(f"{url}/complete", {
        "claim": "0" * 32, "outcome": "answered"}, key=ADMIN_TOKEN), 409)
    assert doc["field"] == "claim"
    doc = assert_problem(await api.post(f"{url}/complete", {
        "claim": claimed["claim"], "outcome": "maybe"}, key=ADMIN_TOKEN), 422)
    assert doc["field"] == "outcome"
    assert_problem(await api.post(f"{url}/claim", {"agent": ""}, key=ADMIN_TOKEN), 422)
    r = await api.post(f"{url}/complete", {"claim": claimed["claim"], "outcome": "busy",
                                           "note": "line busy twice"}, key=ADMIN_TOKEN)
    assert r.status == 200, r.body
    done = r.json()
    assert (done["state"], done["last_outcome"], done["note"], done["attempts"]) == \
        ("failed", "busy", "line busy twice", 1)
    assert done["completed_at"] is not None
    doc = assert_problem(await api.post(f"{url}/complete", {
        "claim": claimed["claim"], "outcome": "answered"}, key=ADMIN_TOKEN), 409)
    assert doc["detail"] == f"callback {row.id} is failed; this claim does not hold it"
    assert_problem(await api.post("/v1/callbacks/424242/claim", {"agent": "x"},
                                  key=ADMIN_TOKEN), 404)


async def test_ten_clients_claiming_at_once_one_wins(api):
    (row,) = await add(api)
    api.refill()
    replies = await asyncio.gather(*(
        api.post(f"/v1/callbacks/{row.id}/claim", {"agent": f"agent{i}"}, key=ADMIN_TOKEN,
                 source=f"127.0.0.{10 + i}") for i in range(10)))
    assert sorted(r.status for r in replies) == [200] + [409] * 9
    (won,) = [r.json() for r in replies if r.status == 200]
    r = await api.get(f"/v1/callbacks/{row.id}", key=ADMIN_TOKEN)
    assert r.json()["claimed_by"] == won["claimed_by"]


async def test_a_completed_callback_reaches_the_webhooks_that_want_it_signed(api):
    async with HookReceiver() as hook:
        hooks = Webhooks([
            ContextNotifier(hook.url("/crm"), secret=SECRET, events=("callback.completed",)),
            ContextNotifier(hook.url("/all"), events=("*",)),
            ContextNotifier(hook.url("/queued"), events=("call.queued",))])
        await api.rebuild(notifier=hooks)
        sender = asyncio.create_task(hooks.run())
        try:
            (row,) = await add(api)
            claim = (await api.post(f"/v1/callbacks/{row.id}/claim", {"agent": "ann"},
                                    key=ADMIN_TOKEN)).json()["claim"]
            r = await api.post(f"/v1/callbacks/{row.id}/complete",
                               {"claim": claim, "outcome": "answered"}, key=ADMIN_TOKEN)
            assert r.status == 200
            (crm,) = await hook.wait(lambda d: d.path == "/crm")
            (everything,) = await hook.wait(lambda d: d.path == "/all")
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
    assert crm.signed_with(SECRET) and "X-IVR-Signature" not in everything.headers
    assert crm.payload == everything.payload
    p = crm.payload
    assert (p["event"], p["call_id"], p["app"], p["user"], p["verified"], p["queue"]) == \
        ("callback.completed", "chan-0", "customer", "alice", True, "sales")
    assert (p["destination"], p["target"], p["reason"], p["path"]) == \
        ("callback:sales", "sales", "answered", ["cust", "sales"])
    assert p["callback"] == {"id": row.id, "state": "completed", "attempts": 1,
                             "outcome": "answered"}
    assert set(p) == {"event", "call_id", "app", "entry", "caller", "language", "path",
                      "custom_data", "user", "verified", "destination", "target", "queue",
                      "reason", "hung_up_by", "callback", "timestamp"}
    assert hook.matching(lambda d: d.path == "/queued") == []
    assert hooks.stats.delivered == 2 and hooks.stats.failed == 0


async def test_cli_lists_the_callbacks(api, db_url, capsys, monkeypatch):
    rows = await add(api, 2) + await add(api, 1, queue="support")
    await api.parts.store.callbacks.claim(rows[1].id, "ann", "tok", T0)

    async def cli(*args: str) -> tuple[int, str, str]:
        """The command in-process (its own event loop, in a thread), its output."""
        def run() -> int:
            try:
                return cli_main(["callbacks", "list", "-c", str(FIXTURE), *args])
            except SystemExit as exc:  # argparse refusing an argument
                return int(exc.code or 0)

        capsys.readouterr()
        code = await asyncio.to_thread(run)
        out, err = capsys.readouterr()
        return code, out, err

    monkeypatch.setenv("IVR_DATABASE_URL", db_url)
    code, out, err = await cli("--json", "--state", "claimed")
    assert code == 0, err
    listed = json.loads(out)
    assert listed["count"] == 1 and listed["callbacks"][0]["claimed_by"] == "api:ann"
    code, out, err = await cli("--queue", "sales")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["id", "state", "queue", "caller", "attempts", "last_outcome",
                                "claimed_by", "created_at"]
    assert [line.split()[:4] for line in lines[1:]] == [
        [str(rows[0].id), "requested", "sales", "+15550000000"],
        [str(rows[1].id), "claimed", "sales", "+15550000001"]]
    code, _, err = await cli("--state", "pending")
    assert code == 2 and "invalid choice: 'pending'" in err
