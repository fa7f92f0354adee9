"""App-link routes: sending an "install" / "open" SMS (admin token), the links themselves
and the two documents phones fetch to open them in the app (public).

- ``POST /v1/sms/app-links``: the SMS, in the single lane.
- ``GET /l/{app}/install``, ``GET /l/{app}/open``: 302 to the App Store for iPhone / iPad /
  iPod, to Google Play for Android, else a small page with both links. (A phone with the app
  opens ``/l/{app}/open`` in the app without asking the engine.)
- ``GET /.well-known/apple-app-site-association``, ``GET /.well-known/assetlinks.json``.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any, Callable, Literal

from aiohttp import web
from pydantic import Field

from ..api.input import read_model
from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN, PUBLIC, ApiRoutes, Reply
from ..api.schemas import RequestModel, reply
from .applinks import (
    LinkError,
    apple_app_site_association,
    asset_links,
    choose_app,
    link_text,
    store_for,
)
from .schemas import SmsStatus
from .single import send_single
from .spool import SpoolError, single_row

REDIRECT = Reply(description="to the platform's store", media_type="text/plain",
                 schema={"type": "string"},
                 headers={"Location": {"required": True, "schema": {"type": "string"}}})
PAGE = Reply(description="a page with both stores' links (neither platform recognised)",
             media_type="text/html", schema={"type": "string"})
JSON_DOC = Reply(description="the document", schema={"type": ["object", "array"]})


class AppLinkRequest(RequestModel):
    """An "install the app" or "open the app" SMS."""

    destination: str = Field(min_length=1, max_length=64)
    kind: Literal["install", "open"]
    app: str | None = Field(None, max_length=128, description="required when several apps "
                            "have sms_links on")
    campaign: str | None = Field(None, max_length=128)
    wait_seconds: float = Field(0, ge=0, le=30)


def add_link_routes(routes: ApiRoutes, config: Callable[[], Any], repo: Any, service: Any,
                    clock: Callable[[], dt.datetime], status_of: Any) -> None:
    @routes.post("/v1/sms/app-links", summary="Send an install-the-app or open-the-app SMS",
                 security=ADMIN, body=AppLinkRequest,
                 responses={200: SmsStatus, 202: SmsStatus},
                 problems={409: "the app cannot get link SMS: unknown, inactive, links off, "
                           "no base_url, or several apps and none named (`field`: app)",
                           404: "no such app"})
    async def send_app_link(request: web.Request, who: Principal) -> web.Response:
        """The text is the app's `install_text` / `open_text` with its link
        (`<base_url>/l/<app>/install|open`); it goes out in the single lane."""
        cfg = config()
        req = await read_model(request, AppLinkRequest)
        try:
            app = choose_app(cfg, req.app)
        except LinkError as exc:
            raise Problem(409, "No app link", str(exc), field="app") from None
        try:
            row = single_row(cfg.model.sms, clock(), req.destination,
                             link_text(cfg, app, req.kind), campaign=req.campaign,
                             agent=f"app-link:{app}")
        except SpoolError as exc:
            raise Problem(422, "Invalid request", str(exc), field=exc.field) from None
        except LookupError as exc:
            raise Problem(409, "No provider", exc.args[0]) from None
        got, done = await send_single(repo, service, row, req.wait_seconds)
        return reply(status_of(got), status=200 if done else 202)

    def link_handler(kind: str) -> Any:
        async def follow(request: web.Request) -> web.Response:
            cfg = config()
            name = request.match_info["app"]
            spec = cfg.model.apps.get(name)
            if spec is None or not spec.sms_links.enabled:
                raise Problem(404, "Not found", "no such link")
            links = spec.sms_links
            store = store_for(links, request.headers.get("User-Agent", ""))
            if store is not None:
                raise web.HTTPFound(store)
            items = "".join(f'<li><a href="{html.escape(u)}">{label}</a></li>'
                            for label, u in (("App Store", links.app_store_url),
                                             ("Google Play", links.play_store_url)) if u)
            return web.Response(text=f"<!doctype html><title>{html.escape(name)}</title>"
                                f"<ul>{items}</ul>", content_type="text/html")
        follow.__name__ = f"{kind}_link"
        follow.__doc__ = ("iPhone, iPad, iPod → the App Store; Android → Google Play; "
                          "anything else: a page with both.")
        return follow

    for kind in ("install", "open"):
        routes.get(f"/l/{{app}}/{kind}", summary=f"The {kind} link of an app",
                   security=PUBLIC, responses={200: PAGE, 302: REDIRECT},
                   problems={404: "no such app, or its sms_links are off"})(link_handler(kind))

    @routes.get("/.well-known/apple-app-site-association", summary="Universal Links document",
                security=PUBLIC, responses={200: JSON_DOC})
    async def aasa(request: web.Request) -> web.Response:
        """Each app with sms_links on, an ios_id and an apple_team_id opens `/l/<app>/*`."""
        return web.json_response(apple_app_site_association(config()))

    @routes.get("/.well-known/assetlinks.json", summary="Android App Links document",
                security=PUBLIC, responses={200: JSON_DOC})
    async def assetlinks(request: web.Request) -> web.Response:
        """Each app with sms_links on, an android_id and android_cert_sha256."""
        return web.json_response(asset_links(config()))
