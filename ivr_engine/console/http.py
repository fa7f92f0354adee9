"""The console's routes, assembled: login and logout, static files, and the pages of
``trees.py``, ``live.py`` and ``admin.py``.

- ``GET /console/login`` (public): the form. ``POST /console/login`` (the admin token as the
  form's ``token``, checked by the door: ``ADMIN_FORM``): sets the session cookie
  (``api/cookies.py``: HttpOnly, SameSite=Strict, Secure over TLS, path ``/console``) and
  goes to the Trees page; a wrong token goes back to the form (303, ``?failed=1``), counted
  against the address like any wrong credential.
- ``POST /console/logout``: clears the cookie.
- ``GET /console/static/{name}``: the stylesheet, ``console.js`` and the vendored htmx
  (``scripts/install`` puts it in ``static/vendor/``), read once at start.
- every other console route takes the session cookie (``CONSOLE``); a page asked for without
  it is redirected to the login form.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from ..api import cookies
from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN_FORM, CONSOLE, PUBLIC, ApiRoutes, Reply
from .admin import add_admin_pages
from .graphviz import GraphCache
from .live import CallStreams, add_live_pages
from .pages import HEADERS, page
from .trees import add_tree_pages

log = logging.getLogger("ivr_engine.console")

LOGIN = "/console/login"
HOME = "/console/trees"
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {  # name: (file, media type)
    "console.css": (STATIC / "console.css", "text/css"),
    "console.js": (STATIC / "console.js", "text/javascript"),
    "htmx.min.js": (STATIC / "vendor" / "htmx.min.js", "text/javascript"),
}
HTML = Reply(description="an HTML page", media_type="text/html", schema={"type": "string"})
SEE_OTHER = Reply(description="to the next page", media_type="text/html",
                  schema={"type": "string"})


@dataclass
class ConsoleParts:
    """What the console reads: the same objects the admin JSON routes are given."""

    config: Callable[[], Any]
    store: Any  # repositories.Store
    registry: Any  # calls.registry.CallRegistry
    calls: Any  # calls.manager.Calls (None: no live calls in this process)
    queues: Any  # livedata.monitor.QueueMonitor or None
    lifecycle: Any  # lifecycle.service.Lifecycle
    clock: Callable[[], dt.datetime]


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **HEADERS})


def _static_files() -> dict[str, tuple[bytes, str, str]]:
    """name: (bytes, media type, ETag)."""
    out = {}
    for name, (path, media) in STATIC_FILES.items():
        try:
            body = path.read_bytes()
            out[name] = (body, media, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        except OSError:
            log.warning("console: %s is missing (scripts/install vendors htmx): the pages "
                        "work without their live parts", path)
    return out


def _secure(request: web.Request) -> bool:
    """Over TLS, here or at the proxy in front (the cookie is then Secure)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


class Console:
    """The console's routes (``.routes``) and what outlives a request: the tree drawings,
    the live call streams (ended by :meth:`close` when the engine stops)."""

    def __init__(self, parts: ConsoleParts) -> None:
        self.parts = parts
        self.graphs = GraphCache()
        self.streams = CallStreams()
        self.routes = self._build()

    async def close(self, app: web.Application | None = None) -> None:
        """aiohttp's on_shutdown: the event streams end (the server then stops at once)."""
        self.streams.close()

    def _build(self) -> ApiRoutes:
        parts, config = self.parts, self.parts.config
        routes = ApiRoutes("console", document=False, private=True, login=LOGIN)
        files = _static_files()

        @routes.get(LOGIN, summary="The console's login form", security=PUBLIC,
                    responses={200: HTML})
        async def login_form(request: web.Request) -> web.Response:
            return page("login.html", failed="failed" in request.query,
                        disabled=config().engine.api.admin_token is None)

        @routes.post(LOGIN, summary="Log in to the console with the admin token",
                     security=ADMIN_FORM, responses={303: SEE_OTHER})
        async def login(request: web.Request, who: Principal) -> web.Response:
            secret = config().engine.api.admin_token
            assert secret is not None  # the door let the admin token in
            resp = see_other(HOME)
            resp.set_cookie(cookies.COOKIE, cookies.issue(secret, time.time()),
                            max_age=cookies.SESSION_SECONDS, path="/console", httponly=True,
                            samesite="Strict", secure=_secure(request))
            log.info("console: login from %s", who.address)
            return resp

        @routes.post("/console/logout", summary="Log out of the console", security=CONSOLE,
                     responses={303: SEE_OTHER})
        async def logout(request: web.Request, who: Principal) -> web.Response:
            resp = see_other(LOGIN)
            resp.del_cookie(cookies.COOKIE, path="/console")
            return resp

        @routes.get("/console", summary="The console", security=CONSOLE,
                    responses={303: SEE_OTHER})
        async def home(request: web.Request, who: Principal) -> web.Response:
            return see_other(HOME)

        @routes.get("/console/static/{name}", summary="The console's scripts and styles",
                    security=PUBLIC, responses={200: Reply(
                        description="a file", media_type="text/plain",
                        schema={"type": "string"}), 304: Reply(
                        description="not modified (If-None-Match)", media_type="text/plain",
                        schema={"type": "string"})}, problems={404: "no such file"})
        async def static(request: web.Request) -> web.Response:
            found = files.get(request.match_info["name"])
            if found is None:
                raise Problem(404, "Not Found", "no such file")
            body, media, etag = found
            headers = {**HEADERS, "Cache-Control": "no-cache", "ETag": etag}
            if request.headers.get("If-None-Match") == etag:  # the browser's copy is current
                return web.Response(status=304, headers=headers)
            return web.Response(body=body, content_type=media, headers=headers)

        add_tree_pages(routes, parts, self.graphs)
        add_live_pages(routes, parts, self.streams)
        add_admin_pages(routes, parts)
        return routes


def console_routes(parts: ConsoleParts) -> Console:
    return Console(parts)
