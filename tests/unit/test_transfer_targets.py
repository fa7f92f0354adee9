"""Transfer targets per call (issue 19 item 5): ``GET /v1/calls/{id}/transfer-targets`` lists
the queues an agent may transfer the caller to — the structure the call entered, for an
app's call its app's tree — and says agents are unrestricted; the list is what the transfer
route's check allows (one pure function, no I/O)."""

from __future__ import annotations

import itertools

from ivr_engine.calls.registry import CallInfo
from ivr_engine.config import load_config
from ivr_engine.ivr.destinations import Destination
from ivr_engine.routing.transfer import (
    TransferRefused,
    check_transfer,
    transfer_targets,
)

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    ENDED_CALL,
    FIXTURE,
    KEYS,
    api_fixture,
    assert_problem,
)

ADMIN = [("Authorization", b"Bearer " + ADMIN_TOKEN.encode())]


def test_the_list_is_exactly_what_the_check_allows():
    cfg = load_config(FIXTURE, {})
    by_root = cfg.routing.queues_by_root
    every = sorted(set().union(*by_root.values()) | {"nope"})
    for root, app in itertools.product(list(by_root) + ["gone"], ("customer", None)):
        listed = transfer_targets(by_root, root, app).queues
        assert list(listed) == sorted(listed)
        for queue in every:
            try:
                check_transfer(by_root, root, app, Destination("queue", queue))
                allowed = True
            except TransferRefused:
                allowed = False
            assert allowed == (queue in listed), (root, queue)
        check_transfer(by_root, root, app, Destination("endpoint", "anyone"))  # agents: any
    assert transfer_targets(by_root, "cust", "customer").queues == ("billing", "sales")
    assert transfer_targets(by_root, "cust-app", "customer").queues == ("app-help", "sales")
    assert transfer_targets(by_root, "staff", "staff").queues == ("operator", "support")
    assert transfer_targets(by_root, "gone", None).queues == ()  # a reload removed it


def live(call_id: str, app: str | None, root: str) -> CallInfo:
    return CallInfo(id=call_id, channel_name=f"PJSIP/{call_id}", caller="+15550001111",
                    entry=f"app:{app}" if app else "did:+15550001000",
                    via="app" if app else "number", app=app, root_menu=root, language="en")


async def test_transfer_targets_of_a_call(api):
    r = await api.raw("GET", f"/v1/calls/{ENDED_CALL}/transfer-targets", ADMIN)
    assert r.status == 200, r.body
    assert r.json() == {"call_id": ENDED_CALL, "app": "customer", "root_menu": "cust",
                        "queues": ["billing", "sales"], "agents": "unrestricted"}
    api.parts.registry.add(live("c-staff", "staff", "staff"))
    api.parts.registry.add(live("c-in-app", "customer", "cust-app"))  # deep-linked in-app
    api.parts.registry.add(live("c-main", None, "top"))
    got = {}
    for cid in ("c-staff", "c-in-app", "c-main"):
        r = await api.raw("GET", f"/v1/calls/{cid}/transfer-targets", ADMIN)
        assert r.status == 200, r.body
        got[cid] = (r.json()["app"], r.json()["queues"], r.json()["agents"])
    assert got == {"c-staff": ("staff", ["operator", "support"], "unrestricted"),
                   "c-in-app": ("customer", ["app-help", "sales"], "unrestricted"),
                   "c-main": (None, ["operator"], "unrestricted")}


async def test_unknown_call_and_credentials(api):
    r = await api.raw("GET", "/v1/calls/no-such-call/transfer-targets", ADMIN)
    doc = assert_problem(r, 404)
    assert doc["title"] == "Unknown call"
    for key in (KEYS["customer"], "wrong"):
        r = await api.raw("GET", f"/v1/calls/{ENDED_CALL}/transfer-targets",
                          [("Authorization", b"Bearer " + key.encode())])
        assert_problem(r, 401)


async def test_a_listed_queue_is_one_the_transfer_route_accepts(api):
    """Every listed queue passes the transfer route's check (the call has ended: 409 ended,
    not 403); a queue of another app's tree is refused with 403."""
    targets = (await api.raw("GET", f"/v1/calls/{ENDED_CALL}/transfer-targets", ADMIN)).json()
    for queue in targets["queues"]:
        r = await api.post(f"/v1/calls/{ENDED_CALL}/transfer", {"to": f"queue:{queue}"},
                           key=ADMIN_TOKEN)
        assert assert_problem(r, 409)["reason"] == "ended"
    r = await api.post(f"/v1/calls/{ENDED_CALL}/transfer", {"to": "queue:support"},
                       key=ADMIN_TOKEN)
    assert_problem(r, 403)
