"""The console's doors, in process (tests/unit/test_api_harness.py): every console route
behind the session cookie (the OpenAPI document leaves them out, so the auth matrix of
test_api_auth.py does not see them: this module holds them to their credential), the login,
the cookie's attributes, the CSRF token on what changes something, the security headers, and
the admin listener."""

from __future__ import annotations

import dataclasses
import re
import time
from urllib.parse import urlencode

from pydantic import SecretStr

from ivr_engine.api import cookies
from ivr_engine.api.routes import ADMIN_FORM, CONSOLE, PUBLIC, spec_of
from ivr_engine.console.pages import CSP
from ivr_engine.server import build_apps

from .test_api_harness import ADMIN_TOKEN, ENDED_CALL, api_fixture, assert_problem  # noqa: F401

FORM = b"application/x-www-form-urlencoded"
PAGES = ("/console/trees", "/console/trees?scope=app:customer&keys=1&entry=app:customer",
         "/console/trees/graph?scope=all", "/console/trees/walk?entry=app:customer&keys=1",
         "/console/calls", f"/console/calls/{ENDED_CALL}", "/console/queues",
         "/console/queues/panel", "/console/sms", "/console/apps")


def console_routes(api) -> list[tuple[str, str, object]]:
    out = []
    for r in api.server.app.router.routes():
        spec = spec_of(r.handler)
        if r.method != "HEAD" and spec is not None and spec.tag == "console":
            out.append((r.method, r.resource.canonical, spec))
    return sorted(out, key=lambda x: (x[1], x[0]))


def filled(path: str) -> str:
    path = path.replace("{action}", "stop")
    return re.sub(r"\{[^}]+\}", "x", path)


async def cookie_of(api) -> tuple[str, str]:
    """Log in through the form: (the session cookie's value, the session's CSRF token)."""
    r = await api.post("/console/login", urlencode({"token": ADMIN_TOKEN}).encode(),
                       content_type=FORM)
    assert r.status == 303 and r.headers["location"] == "/console/trees", r
    value = re.match(r"ivr_console=([^;]+)", r.headers["set-cookie"])[1]
    nonce = cookies.verify(SecretStr(ADMIN_TOKEN), value.encode(), time.time())
    return value, cookies.csrf_token(SecretStr(ADMIN_TOKEN), nonce)


async def send(api, method: str, target: str, cookie: str | None, *, csrf: str | None = None,
               body: bytes | None = None, ctype: bytes = FORM):
    headers = [("Cookie", f"ivr_console={cookie}".encode())] if cookie else []
    if csrf is not None:
        headers.append(("X-CSRF-Token", csrf.encode()))
    if body is not None:
        headers.append(("Content-Type", ctype))
    return await api.raw(method, target, headers, body)


async def test_every_console_route_requires_the_session_cookie(api):
    routes = console_routes(api)
    assert len(routes) >= 16
    opened = {(m, p) for m, p, s in routes if s.security != (CONSOLE,)}
    assert opened == {("GET", "/console/login"), ("POST", "/console/login"),
                      ("GET", "/console/static/{name}")}
    assert all(s.security in ((PUBLIC,), (ADMIN_FORM,)) for m, p, s in routes
               if (m, p) in opened)
    secret = SecretStr(ADMIN_TOKEN)
    forged = cookies.issue(SecretStr("another-admin-token-000000000000000000"), time.time())
    expired = cookies.issue(secret, time.time() - cookies.SESSION_SECONDS - 1)
    good = cookies.issue(secret, time.time())
    tampered = good[:40] + ("B" if good[40] != "B" else "C") + good[41:]  # in the MAC
    for method, path, spec in routes:
        if (method, path) in opened:
            continue
        for cookie in (None, forged, expired, "garbage", tampered, good + "A", "é" + good):
            r = await send(api, method, filled(path), cookie, body=b"" if method == "POST"
                           else None)
            if method == "GET":  # a page: to the login form
                assert r.status == 303 and r.headers["location"] == "/console/login", \
                    (method, path, cookie, r.status)
            else:
                assert_problem(r, 401)
            api.refill()
    print(f"\n{len(routes) - len(opened)} console routes refuse without a valid cookie")


async def test_login_sets_a_strict_http_only_cookie_and_a_wrong_token_sets_none(api):
    r = await api.post("/console/login", urlencode({"token": ADMIN_TOKEN}).encode(),
                       content_type=FORM)
    attrs = {a.strip().split("=")[0].lower(): a for a in r.headers["set-cookie"].split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= set(attrs)
    assert "samesite=strict" in attrs["samesite"].lower().replace(" ", "")
    assert attrs["path"].strip() == "Path=/console" and "secure" not in attrs  # plain http
    r = await api.raw("POST", "/console/login", [("Content-Type", FORM),
                                                 ("X-Forwarded-Proto", b"https")],
                      urlencode({"token": ADMIN_TOKEN}).encode())
    assert "Secure" in r.headers["set-cookie"]  # behind a TLS proxy
    for body in (urlencode({"token": "x" * 40}).encode(), b"token=", b"other=1", b"\xff\xfe"):
        r = await api.post("/console/login", body, content_type=FORM)
        assert r.status == 303 and r.headers["location"] == "/console/login?failed=1", body
        assert "set-cookie" not in r.headers
    # the token in a JSON body or a Bearer header is not the form: refused too
    r = await api.post("/console/login", {"token": ADMIN_TOKEN}, key=ADMIN_TOKEN)
    assert r.status == 303 and "set-cookie" not in r.headers


async def test_what_changes_something_needs_the_csrf_token(api):
    cookie, csrf = await cookie_of(api)
    target = "/console/sms/dialers/nope/stop"  # no such dialer: 404 once past the door
    assert_problem(await send(api, "POST", target, cookie, body=b""), 403)
    assert_problem(await send(api, "POST", target, cookie, csrf="x" * len(csrf), body=b""), 403)
    _, other = await cookie_of(api)  # another session's token
    assert_problem(await send(api, "POST", target, cookie, csrf=other, body=b""), 403)
    assert_problem(await send(api, "POST", target, cookie, csrf=csrf, body=b""), 404)
    assert_problem(await send(api, "POST", target, cookie,
                              body=urlencode({"csrf": csrf}).encode()), 404)
    r = await send(api, "POST", "/console/logout", cookie, body=b"")
    assert_problem(r, 403)
    r = await send(api, "POST", "/console/logout", cookie, body=urlencode({"csrf": csrf})
                   .encode())
    assert r.status == 303 and r.headers["location"] == "/console/login"
    assert re.match(r'ivr_console="?"?;', r.headers["set-cookie"])  # cleared


async def test_every_page_has_a_strict_csp_and_no_inline_script_or_style(api):
    cookie, _ = await cookie_of(api)
    for target in PAGES:
        r = await send(api, "GET", target, cookie)
        assert r.status == 200, (target, r.status, r.body[:300])
        assert r.headers["content-type"].startswith("text/html"), target
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        html = r.body.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), target  # no inline script
        assert not re.search(r"\sstyle=", html), target  # no inline style (the SVG too)
        assert not re.search(r"\son[a-z]+=", html), target  # no event handler attribute
    assert "script-src 'self'" in CSP and "unsafe" not in CSP
    r = await send(api, "GET", "/console/static/console.js", None)
    assert r.status == 200 and r.headers["content-type"].startswith("text/javascript")
    again = await api.raw("GET", "/console/static/console.js",
                          [("If-None-Match", r.headers["etag"].encode())])
    assert again.status == 304 and again.body == b""  # the browser's copy is current
    assert_problem(await send(api, "GET", "/console/static/..%2Fpages.py", None), 404)


async def test_the_openapi_document_leaves_the_console_out(api):
    doc = (await api.get("/openapi.json")).json()
    assert not [p for p in doc["paths"] if p.startswith("/console")]


async def test_the_console_is_served_on_the_admin_listener_only(api):
    cfg = api.parts.config()
    engine = cfg.model.engine
    model = cfg.model.model_copy(update={"engine": engine.model_copy(update={
        "api": engine.api.model_copy(update={"admin_listen": "127.0.0.1:9"})})})
    split = dataclasses.replace(cfg, model=model)
    public, admin = build_apps(dataclasses.replace(api.parts, config=lambda: split,
                                                   lifecycle=None, streams=None))
    paths = lambda app: {r.resource.canonical for r in app.router.routes()}  # noqa: E731
    assert not {p for p in paths(public) if p.startswith("/console")}
    assert {"/console/login", "/console/trees", "/console/static/{name}"} <= paths(admin)


async def test_the_graph_is_drawn_again_after_a_reload_and_not_before(api):
    from .test_api_harness import load_test_config

    box = [api.parts.config()]
    await api.rebuild(config=lambda: box[0])
    cookie, _ = await cookie_of(api)
    r = await send(api, "GET", "/console/trees/graph?scope=all", cookie)
    gen = re.search(r'data-gen="([^"]+)"', r.body.decode())[1]
    assert (await send(api, "GET", f"/console/trees/graph?scope=all&gen={gen}", cookie)
            ).status == 204  # the page's drawing is current: nothing to swap
    drawn = api.parts.console.graphs.drawn
    box[0] = load_test_config()  # what a reload swaps in: a new snapshot
    r = await send(api, "GET", f"/console/trees/graph?scope=all&gen={gen}", cookie)
    assert r.status == 200 and re.search(r'data-gen="([^"]+)"', r.body.decode())[1] != gen
    assert api.parts.console.graphs.drawn == drawn + 1
