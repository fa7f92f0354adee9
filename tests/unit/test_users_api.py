"""The users API (issue 19), in process, on SQLite and PostgreSQL: create, read, replace,
change, delete, pages, the CSV import (all or nothing, every bad line with its number), the
database winning over the config's ``users:``, the user's own ringing switch, and a
database user registering devices."""

from __future__ import annotations

import pytest

from .test_api_harness import ADMIN_TOKEN, FIXTURE, assert_problem, api_fixture  # noqa: F401

USERS = "/v1/admin/users"
CSV = b"text/csv"


async def send(api, method: str, target: str, body=None, key: str = ADMIN_TOKEN, **kw):
    if body is None:
        return await api.raw(method, target, [("Authorization", b"Bearer " + key.encode())])
    return await api.post(target, body, key=key, method=method, **kw)


async def test_create_read_replace_patch_delete(api):
    body = {"name": "dana", "ringing_device": "uc+mobile", "mobile_endpoint": "dana-m",
            "uc_endpoint": "dana", "app": "customer", "no_answer": "queue:support",
            "wakeup": {"mobile_loops": 4}}
    r = await send(api, "POST", USERS, body)
    assert r.status == 201, r.body
    assert r.json() == {**body, "no_answer": "queue:support", "wakeup": {"mobile_loops": 4},
                        "source": "database", "config_at": None}
    assert assert_problem(await send(api, "POST", USERS, body), 409)["field"] == "name"
    assert (await send(api, "GET", f"{USERS}/dana")).json()["uc_endpoint"] == "dana"
    # PUT replaces every key: those left out take their defaults
    r = await send(api, "PUT", f"{USERS}/dana", {"ringing_device": "uc", "uc_endpoint": "d2"})
    assert r.status == 200 and r.json()["mobile_endpoint"] is None and r.json()["wakeup"] == {}
    r = await send(api, "PATCH", f"{USERS}/dana", {"no_answer": "hangup", "wakeup":
                                                    {"ring_seconds": 12}})
    assert (r.status, r.json()["no_answer"], r.json()["uc_endpoint"], r.json()["wakeup"]) == \
        (200, "hangup", "d2", {"ring_seconds": 12})
    assert (await send(api, "DELETE", f"{USERS}/dana")).status == 204
    assert_problem(await send(api, "GET", f"{USERS}/dana"), 404)
    assert_problem(await send(api, "DELETE", f"{USERS}/dana"), 404)
    assert_problem(await send(api, "PATCH", f"{USERS}/dana", {"app": None}), 404)


async def test_refusals_name_the_field(api):
    cases = [
        ("POST", USERS, {"name": "bad name"}, 422, "name"),
        ("PUT", f"{USERS}/dana", {"ringing_device": "fax"}, 422, "ringing_device"),
        ("PUT", f"{USERS}/dana", {"mobile_endpoint": "d"}, 422, None),  # needs app
        ("PUT", f"{USERS}/dana", {"mobile_endpoint": "d", "app": "nope"}, 422, "app"),
        ("PUT", f"{USERS}/dana", {"ringing_device": "uc", "uc_endpoint": "d",
                                  "no_answer": "menu:cust"}, 422, "no_answer"),
        ("PUT", f"{USERS}/dana", {"ringing_device": "uc", "uc_endpoint": "d",
                                  "wakeup": {"ring_seconds": 1}}, 422, "wakeup.ring_seconds"),
        # alice's phone (users: in the config) cannot be given to another user
        ("PUT", f"{USERS}/dana", {"mobile_endpoint": "alice", "app": "customer"}, 422,
         "mobile_endpoint"),
    ]
    for method, target, body, status, field in cases:
        doc = assert_problem(await send(api, method, target, body), status)
        assert doc.get("field") == field, (body, doc)
    r = await send(api, "PUT", f"{USERS}/dana", {"mobile_endpoint": "dm", "app": "customer"})
    assert r.status == 201
    doc = assert_problem(await send(api, "PUT", f"{USERS}/erin", {
        "mobile_endpoint": "dm", "app": "customer"}), 409)
    assert (doc["field"], "user 'dana'" in doc["detail"]) == ("mobile_endpoint", True)


async def test_the_database_wins_over_the_config_and_deleting_brings_it_back(api):
    r = await send(api, "GET", f"{USERS}/alice")
    assert (r.json()["source"], r.json()["config_at"].startswith(f"{FIXTURE}:")) == \
        ("config", True)
    doc = assert_problem(await send(api, "DELETE", f"{USERS}/alice"), 409)
    assert "defined in the config file" in doc["detail"] and str(FIXTURE) in doc["detail"]
    # a PATCH of a config user copies it to the database with the change
    r = await send(api, "PATCH", f"{USERS}/alice", {"wakeup": {"ring_seconds": 40}})
    assert (r.json()["source"], r.json()["mobile_endpoint"], r.json()["wakeup"]) == \
        ("database", "alice", {"ring_seconds": 40})
    assert r.json()["config_at"] == (await send(api, "GET", f"{USERS}/alice")).json()[
        "config_at"]
    assert (await send(api, "DELETE", f"{USERS}/alice")).status == 204
    assert (await send(api, "GET", f"{USERS}/alice")).json()["source"] == "config"


async def test_pages_by_name(api):
    for name in ("u3", "u1", "u2", "u4", "u5"):
        assert (await send(api, "PUT", f"{USERS}/{name}", {"ringing_device": "uc",
                                                           "uc_endpoint": name})).status == 201
    seen, after = [], None
    while True:
        r = await send(api, "GET", f"{USERS}?limit=2" + (f"&after={after}" if after else ""))
        page = r.json()
        assert page["total"] == 5
        seen += [u["name"] for u in page["users"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == ["u1", "u2", "u3", "u4", "u5"]
    assert_problem(await send(api, "GET", f"{USERS}?limit=0"), 422)


IMPORT = f"{USERS}/import"
HEADER = b"name,ringing_device,mobile_endpoint,uc_endpoint,app,ring_seconds\n"


async def test_import_is_all_or_nothing_and_lists_every_bad_line(api):
    good = HEADER + b"dana,mobile,dana-m,,customer,\nerin,uc,,erin,,20\n"
    r = await api.post(IMPORT, good, key=ADMIN_TOKEN, content_type=CSV)
    assert (r.status, r.json()) == (200, {"imported": 2, "created": 2, "replaced": 0})
    bad = HEADER + (b"erin,uc,,erin2,,\n"           # good: would replace erin
                    b"fay,mobile,alice,,customer,\n"  # alice's phone (config)
                    b"gus,uc\n"
                    b"hal,mobile,dana-m,,customer,\n"  # dana's (database, not in the file)
                    b"ivy,uc,,ivy,,3\n")
    r = await api.post(IMPORT, bad, key=ADMIN_TOKEN, content_type=CSV)
    doc = assert_problem(r, 422)
    assert doc["bad_lines"] == 4 and "nothing was imported" in doc["detail"]
    assert [(e["line"], e["reason"].split(":")[0]) for e in doc["errors"]] == [
        (3, "mobile_endpoint"), (4, "2 columns; the first line names 6"),
        (5, "mobile_endpoint"), (6, "ring_seconds")]
    assert "user 'dana' (in the database)" in doc["errors"][2]["reason"]
    assert (await send(api, "GET", f"{USERS}/erin")).json()["uc_endpoint"] == "erin"
    # users of the file may trade endpoints; a second import replaces
    swap = HEADER + b"dana,mobile,erin-m,,customer,\nerin,mobile,dana-m,,customer,\n"
    r = await api.post(IMPORT, swap, key=ADMIN_TOKEN, content_type=CSV)
    assert r.json() == {"imported": 2, "created": 0, "replaced": 2}
    assert (await send(api, "GET", f"{USERS}/erin")).json()["mobile_endpoint"] == "dana-m"


async def test_import_limits_and_media_type(api):
    assert_problem(await api.post(IMPORT, HEADER, key=ADMIN_TOKEN), 415)  # JSON type
    big = HEADER + b"x" * (16 * 1024 * 1024)
    r = await api.post(IMPORT, big, key=ADMIN_TOKEN, content_type=CSV)
    assert "user_directory.imports.max_bytes" in assert_problem(r, 413)["detail"]
    doc = assert_problem(await api.post(IMPORT, b"nom\nx\n", key=ADMIN_TOKEN,
                                        content_type=CSV), 422)
    assert doc["errors"][0]["line"] == 1 and "unknown column 'nom'" in doc["errors"][0][
        "reason"]


async def test_the_user_switches_their_ringing_device(api):
    r = await send(api, "PUT", f"{USERS}/dana", {"ringing_device": "uc+mobile",
                                                 "mobile_endpoint": "dm", "uc_endpoint": "du",
                                                 "app": "customer"})
    assert r.status == 201
    dana = await api.login("customer", "dana")
    r = await send(api, "PUT", "/v1/users/me/ringing", {"ringing_device": "mobile"}, key=dana)
    assert r.json() == {"user": "dana", "ringing_device": "mobile", "source": "database"}
    assert (await send(api, "GET", f"{USERS}/dana")).json()["ringing_device"] == "mobile"
    assert (await send(api, "GET", "/v1/users/me/ringing", key=dana)).json()[
        "ringing_device"] == "mobile"
    # alice (users: in the file) has no UC endpoint: uc+mobile is refused
    alice = await api.login("customer", "alice")
    doc = assert_problem(await send(api, "PUT", "/v1/users/me/ringing",
                                    {"ringing_device": "uc+mobile"}, key=alice), 422)
    assert doc["field"] == "ringing_device" and "needs uc_endpoint" in doc["detail"]
    doc = assert_problem(await send(api, "PUT", "/v1/users/me/ringing",
                                    {"ringing_device": "uc"}, key=alice), 422)
    assert doc["field"] == "ringing_device"  # only mobile or uc+mobile from the app
    # sam is woken through the staff app, not through this one
    sam = await api.login("customer", "sam")
    doc = assert_problem(await send(api, "PUT", "/v1/users/me/ringing",
                                    {"ringing_device": "mobile"}, key=sam), 409)
    assert doc["field"] == "app"
    # a config user's switch makes it a database user
    r = await send(api, "PUT", "/v1/users/me/ringing", {"ringing_device": "mobile"}, key=alice)
    assert r.json()["source"] == "database"


async def test_a_database_user_registers_its_devices(api):
    """The device registration knew only the config's users: a database user's phone could
    never be woken (404 Unknown user)."""
    r = await send(api, "PUT", f"{USERS}/dana", {"mobile_endpoint": "dm", "app": "customer"})
    assert r.status == 201
    dana = await api.login("customer", "dana")
    r = await api.post("/v1/devices", {"platform": "android", "push_token": "t" * 40},
                       key=dana)
    assert r.status == 201, r.body
    assert [d.user for d in await api.parts.store.devices.for_user("dana", "customer")] == \
        ["dana"]
    nobody = await api.login("customer", "nobody")
    assert_problem(await api.post("/v1/devices", {"platform": "android",
                                                  "push_token": "t" * 40}, key=nobody), 404)


async def test_postgresql_has_statistics_after_an_import(api, db_backend):
    """Without them, the next import's checks (``name IN`` / ``mobile_endpoint IN`` lists of
    500) scanned the whole table per list: 0.4 → 14 s at 10 000 users (bench/users_scale.py)
    until autovacuum came by."""
    if db_backend != "postgresql":
        pytest.skip("SQLite plans these lists on the indexes without statistics")
    from sqlalchemy import text

    body = HEADER + b"".join(b"u%04d,uc,,d%04d,,\n" % (i, i) for i in range(2000))
    r = await api.post(IMPORT, body, key=ADMIN_TOKEN, content_type=CSV)
    assert r.json()["imported"] == 2000
    async with api.parts.store.engine.connect() as conn:
        tuples = (await conn.execute(text(
            "SELECT reltuples FROM pg_class WHERE relname = 'users'"))).scalar_one()
    assert tuples == 2000
