"""The web widget's routes (public: a contact centre's website embeds them), for each app
whose ``widget.enabled`` is set; any other app answers ``404`` as if it did not exist.

- ``GET /w/{app}?lang=xx``: the page (``templates/widget.html``): the app's visual IVR (the
  tree of ``GET /v1/apps/{app}/menu``, same labels, open-now and waits: the same functions),
  each entry a button that places a WebRTC call deep-linked to it, with a keypad for DTMF.
  Served with a Content-Security-Policy: scripts and styles of this origin only, the
  WebSocket of Asterisk, ``frame-ancestors`` from ``widget.frame_ancestors``.
- ``GET /w/{app}/menu``: the same tree as JSON (the page refreshes waits and open-now).
- ``POST /w/{app}/calls``: an anonymous call plan for one WebRTC call — the token the
  browser sends in ``X-IVR-Token``, deep-linked to the clicked node (``target``), and where
  to call. The plan is the one the app's key gets, without the key: no user, unverified.
- ``OPTIONS /w/{app}/calls``: the CORS preflight of a site listed in ``widget.cors_origins``.
- ``GET /w-static/{name}.js``, ``.css``: the page's script and style, and JsSIP (bundled from npm by
  ``scripts/install``, never from a CDN).

Every route is limited per client address by the door, like any other.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from ..api.input import read_model
from ..api.problems import Problem
from ..api.routes import PUBLIC, ApiRoutes, Reply, query_of
from ..api.schemas import reply
from ..apps.guard_db import DatabaseGuard, MemoryGuard, plan_digits
from ..apps.plans import PlanError, check_room, draw_token
from ..apps.repo import IntentRepo, TokenSpaceFull
from ..livedata.schemas import MenuTree
from ..livedata.targets import TargetError, resolve_target
from ..livedata.texts import app_texts
from ..livedata.tree import app_top, export_tree
from .page import accept_language, content_security_policy, render_page
from .schemas import WidgetCall, WidgetCallRequest, WidgetQuery, WidgetSip

log = logging.getLogger("ivr_engine.api")

STATIC = Path(__file__).parent / "static"
ASSETS = ("widget.js", "widget.css", "jssip.min.js")
NO_WIDGET = "no such app, or its web widget is not enabled"
PAGE = Reply(description="the widget page", media_type="text/html", schema={"type": "string"})
SCRIPT = Reply(description="a script", media_type="text/javascript", schema={"type": "string"})
STYLE = Reply(description="a style sheet", media_type="text/css", schema={"type": "string"})
PREFLIGHT = Reply(description="CORS preflight answered (the allowed origin in "
                  "Access-Control-Allow-Origin; none when the origin is not allowed)",
                  schema={})


class _Assets:
    """The static files, read once off the event loop (JsSIP is ~250 KB)."""

    def __init__(self) -> None:
        self._cache: dict[str, bytes] = {}

    async def get(self, name: str) -> bytes | None:
        if name not in self._cache:
            path = STATIC / name
            try:
                self._cache[name] = await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:
                return None
        return self._cache[name]


def _widget(cfg: Any, name: str) -> Any:
    spec = cfg.model.apps.get(name)
    entry = cfg.routing.apps.get(name)
    if spec is None or not spec.widget.enabled or entry is None or not entry.active or \
            app_top(cfg.model, name, "ivr") is None:
        raise Problem(404, "Not found", NO_WIDGET)
    return spec.widget


def _cors(request: web.Request, widget: Any, resp: web.StreamResponse) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin and origin in widget.cors_origins:
        resp.headers["Access-Control-Allow-Origin"] = origin
    resp.headers["Vary"] = "Origin"
    return resp


def _same_or_allowed(request: web.Request, widget: Any) -> None:
    """A browser's cross-site POST from a site that is not listed is refused (the preflight
    already stops it in a browser; this stops a page that skips it)."""
    origin = request.headers.get("Origin")
    if not origin or origin in widget.cors_origins:
        return
    if origin.split("://", 1)[-1] != request.host:
        raise Problem(403, "Origin not allowed", "this site may not place calls through the "
                      "widget (widget.cors_origins)")


def widget_routes(config: Callable[[], Any], intents: IntentRepo, queues: Any,
                  clock: Callable[[], dt.datetime], randbelow: Callable[[int], int],
                  guard: MemoryGuard | DatabaseGuard) -> ApiRoutes:
    """``queues``: the livedata QueueMonitor (None: AMI not configured, no waits shown);
    ``guard``: the fallback callers' guard (a hardened app's plans get long tokens)."""
    routes = ApiRoutes("widget")
    assets = _Assets()

    def tree(cfg: Any, name: str, lang: str | None) -> dict:
        data = export_tree(cfg.model, cfg.tree, name, app_top(cfg.model, name, "ivr"), lang,
                           clock(), queues.wait_of if queues is not None else lambda q: None)
        # the app's in-app texts (after-hours, closed, ...) as GET /v1/apps/{app}/menu has them
        return {**data, "texts": app_texts(cfg.model, cfg.routing.apps[name], lang)}

    @routes.get("/w/{app}", summary="The app's web widget: visual IVR, calls from the page",
                security=PUBLIC, query=WidgetQuery, responses={200: PAGE},
                problems={404: NO_WIDGET})
    async def widget_page(request: web.Request) -> web.Response:
        """The app's visual IVR in the visitor's language (`lang`, else the browser's
        Accept-Language): each entry places a WebRTC call that starts at that node."""
        cfg = config()
        name = request.match_info["app"]
        widget = _widget(cfg, name)
        q: WidgetQuery = query_of(request)
        lang = q.lang or accept_language(request.headers.get("Accept-Language", ""))
        html = render_page(name, tree(cfg, name, lang), widget)
        return web.Response(text=html, content_type="text/html", headers={
            "Content-Security-Policy": content_security_policy(widget),
            "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache"})

    @routes.get("/w/{app}/menu", summary="The widget's tree as JSON", security=PUBLIC,
                query=WidgetQuery, responses={200: MenuTree}, problems={404: NO_WIDGET})
    async def widget_menu(request: web.Request) -> web.StreamResponse:
        """The tree of `GET /v1/apps/{app}/menu` (surface `ivr`) without a key, for the page
        (waits and open-now refreshed)."""
        cfg = config()
        name = request.match_info["app"]
        widget = _widget(cfg, name)
        q: WidgetQuery = query_of(request)
        lang = q.lang or accept_language(request.headers.get("Accept-Language", ""))
        out = reply(MenuTree.model_validate({**tree(cfg, name, lang), "surface": "ivr"}))
        out.headers["Cache-Control"] = "no-cache"
        return _cors(request, widget, out)

    @routes.route("OPTIONS", "/w/{app}/calls", summary="CORS preflight of the widget's calls",
                  security=PUBLIC, responses={204: PREFLIGHT}, problems={404: NO_WIDGET})
    async def widget_preflight(request: web.Request) -> web.StreamResponse:
        """Answers a site listed in `widget.cors_origins` (POST, Content-Type)."""
        widget = _widget(config(), request.match_info["app"])
        resp = web.Response(status=204, headers={
            "Access-Control-Allow-Methods": "POST", "Access-Control-Max-Age": "600",
            "Access-Control-Allow-Headers": "Content-Type"})
        return _cors(request, widget, resp)

    @routes.post("/w/{app}/calls", summary="An anonymous call plan for a WebRTC call",
                 security=PUBLIC, body=WidgetCallRequest, responses={201: WidgetCall},
                 problems={403: "the request comes from a site not in widget.cors_origins",
                           404: NO_WIDGET,
                           422: "`target` is not a node of the app's tree (`field` names it)",
                           503: "too many unexpired tokens for this app; retry shortly"})
    async def widget_call(request: web.Request) -> web.StreamResponse:
        """A one-time token (valid `token_ttl_seconds`, single use) for a call that starts
        at `target`, and where the browser calls: SIP over secure WebSocket to
        `sip:app-<app>@<domain>` with the token in `X-IVR-Token`. Anonymous: no user, no
        custom data."""
        cfg = config()
        name = request.match_info["app"]
        widget = _widget(cfg, name)
        _same_or_allowed(request, widget)
        req = await read_model(request, WidgetCallRequest)
        app = cfg.routing.apps[name]
        try:
            resolve_target(cfg.tree, app.menu, req.target)
        except TargetError as exc:
            raise Problem(422, "Invalid target", str(exc), field="target") from None
        now = clock()
        digits = await plan_digits(guard, cfg.model, cfg.routing, name, (), now)
        lang = app.language_for(req.language)
        try:
            check_room(await intents.active_count(name, now), digits)
            intent = await intents.add(app=name, draw=lambda: draw_token(digits, randbelow),
                                       caller="", language=lang, custom_data={}, now=now,
                                       ttl_seconds=app.token_ttl_seconds, target=req.target,
                                       user=None)
        except PlanError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        except TokenSpaceFull:
            raise Problem(503, "Too many pending calls", "no free call token for this app; "
                          "retry shortly") from None
        domain = widget.sip_domain
        sip = WidgetSip(wss_url=widget.sip_wss_url, uri=f"sip:app-{name}@{domain}",
                        from_uri=f"sip:{widget.sip_user}@{domain}",
                        headers={"X-IVR-Token": intent.token},
                        ice_servers=list(widget.ice_servers))
        log.info("widget call plan for app %r, target %r", name, req.target)
        out = reply(WidgetCall(app=name, token=intent.token, target=req.target,
                               language=lang, expires_at=intent.expires_at, sip=sip),
                    status=201)
        return _cors(request, widget, out)

    async def asset(name: str, kind: str) -> web.Response:
        if name not in ASSETS:
            raise Problem(404, "Not found", "no such file")
        body = await assets.get(name)
        if body is None:
            if name == "jssip.min.js":
                raise Problem(503, "JsSIP not installed", "run scripts/install: it bundles "
                              "JsSIP from npm into ivr_engine/edge/static/jssip.min.js")
            raise Problem(404, "Not found", "no such file")
        return web.Response(body=body, content_type=kind, headers={
            "Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})

    @routes.get("/w-static/{name}.js", summary="The widget's script, and JsSIP",
                security=PUBLIC, responses={200: SCRIPT},
                problems={404: "no such file",
                          503: "JsSIP is not installed (run scripts/install)"})
    async def widget_script(request: web.Request) -> web.Response:
        """`widget.js` and `jssip.min.js` (JsSIP from npm, bundled by scripts/install)."""
        return await asset(request.match_info["name"] + ".js", "text/javascript")

    @routes.get("/w-static/{name}.css", summary="The widget's style sheet", security=PUBLIC,
                responses={200: STYLE}, problems={404: "no such file"})
    async def widget_style(request: web.Request) -> web.Response:
        """`widget.css`."""
        return await asset(request.match_info["name"] + ".css", "text/css")

    return routes
