"""The live-assist routes (SDK key).

- ``GET /v1/apps/{app}/menu?surface=ivr|in-app&lang=xx``: the app's own tree (visual IVR or
  in-app menu) with labels, open-now and queue waits; an ``ETag`` so the app can poll with
  ``If-None-Match`` and get ``304`` while nothing changed.
- ``GET /v1/queues/{name}/status``: a queue of the app's own tree (either surface) as
  app_queue reports it, with wait estimates; the app is the one whose key is presented.
- ``GET /v1/queues/{name}/events``: the same status as server-sent events, at every change.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from aiohttp import web

from ..api.auth import authenticate_app, bearer_token, key_matches
from ..api.context import ApiContext
from ..api.guards import throttle_address, throttle_key
from ..api.problems import Problem
from ..api.routes import RATE_LIMITED, SDK_KEY, ApiRoutes, Reply
from ..api.schemas import reply
from .schemas import MenuTree, QueueStatus
from .tree import app_top, export_tree, queues_of

SURFACES = ("ivr", "in-app")
NOT_MODIFIED = Reply(description="not modified: the ETag sent in If-None-Match still holds",
                     schema={})
UNKNOWN_QUEUE = "no such queue in this app's tree"
STREAM_REFRESH = 5.0  # seconds: the stream repeats the status at least this often (waits tick)


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def _app_for_key(ctx: ApiContext, request: web.Request) -> str:
    """The app whose api key the request carries (every key compared); else the 401."""
    cfg = ctx.config()
    token = bearer_token(request)
    found = None
    for name, app in cfg.model.apps.items():
        if key_matches(token, app.api_key):
            found = name
    if found is None:
        authenticate_app(cfg, request, None)  # raises the generic 401 (and logs why)
    return found  # type: ignore[return-value]


def livedata_routes(ctx: ApiContext) -> ApiRoutes:
    routes = ApiRoutes("live")

    @routes.get(
        "/v1/apps/{app}/menu", summary="The app's own tree: visual IVR or in-app menu",
        security=SDK_KEY, responses={200: Reply(MenuTree, "the tree", headers={"ETag": {
            "required": True, "schema": {"type": "string"}}}), 304: NOT_MODIFIED},
        problems={404: "the app has no mobile-app access point on this surface",
                  422: "`surface` is not ivr or in-app, or `lang` is not a language code",
                  429: RATE_LIMITED})
    async def menu(request: web.Request) -> web.StreamResponse:
        """Query: `surface` (`ivr`, default, or `in-app`), `lang` (labels in this language,
        then its base language, the app's default, the engine's default). Every node id is a
        deep-link `target` for `POST /v1/apps/{app}/calls`. Send the `ETag` back in
        `If-None-Match` to get `304` while nothing changed."""
        throttle_address(ctx, request)
        cfg = ctx.config()
        name = authenticate_app(cfg, request, request.match_info["app"])
        throttle_key(ctx, name)
        surface = request.query.get("surface", "ivr")
        if surface not in SURFACES:
            raise Problem(422, "Invalid request", "surface must be ivr or in-app",
                          field="surface")
        lang = request.query.get("lang") or None
        if lang is not None and (len(lang) > 16 or not lang.replace("_", "").isalnum()):
            raise Problem(422, "Invalid request", "lang must be a language code like en or "
                          "pt_BR", field="lang")
        top = app_top(cfg.model, name, surface)
        if top is None:
            raise Problem(404, "No menu", f"app {name!r} has no mobile-app access point on "
                          f"the {surface} surface")
        queues: Any = ctx.queues
        data = export_tree(cfg.model, cfg.tree, name, top, lang, ctx.clock(),
                           queues.wait_of if queues is not None else lambda q: None)
        tree = MenuTree.model_validate({**data, "surface": surface})
        body = json.dumps(tree.model_dump(mode="json")).encode()
        etag = _etag(body)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if _matches(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/json", headers=headers)

    @routes.get(
        "/v1/queues/{name}/status", summary="A queue of the app's tree: callers, agents, "
        "estimated waits", security=SDK_KEY, responses={200: QueueStatus},
        problems={404: UNKNOWN_QUEUE, 429: RATE_LIMITED,
                  503: "queues are not followed now (AMI not configured or not connected)"})
    async def queue_status(request: web.Request) -> web.Response:
        """Callers waiting (by position, no identities), agents, longest wait, and the
        estimated wait of a new caller and of each position, with the method and its
        confidence (null when the data is too thin). Only queues of the presenting app's
        own tree (either surface)."""
        throttle_address(ctx, request)
        name = _app_for_key(ctx, request)
        throttle_key(ctx, name)
        queue = _own_queue(ctx, name, request.match_info["name"])
        return reply(_monitor(ctx).status(queue))

    @routes.get(
        "/v1/queues/{name}/events", summary="A queue's status as server-sent events",
        security=SDK_KEY, responses={200: Reply(
            description="`text/event-stream`: an `event: status` whose `data` is the queue's "
            "status (the QueueStatus document) at once, at every change and at least every "
            f"{STREAM_REFRESH:g} s", media_type="text/event-stream", schema={"type": "string"})},
        problems={404: UNKNOWN_QUEUE, 406: "the request does not accept text/event-stream",
                  429: RATE_LIMITED,
                  503: "queues are not followed now (AMI not configured or not connected)"})
    async def queue_events(request: web.Request) -> web.StreamResponse:
        """The status of `GET /v1/queues/{name}/status`, pushed: the app shows positions
        moving without polling. Needs `Accept: text/event-stream`. The stream ends with an
        `event: unavailable` when AMI goes away (reconnect later)."""
        throttle_address(ctx, request)
        name = _app_for_key(ctx, request)
        throttle_key(ctx, name)
        queue = _own_queue(ctx, name, request.match_info["name"])
        if "text/event-stream" not in request.headers.get("Accept", ""):
            raise Problem(406, "Not Acceptable", "this route streams text/event-stream; send "
                          "Accept: text/event-stream")
        monitor = _monitor(ctx)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            while monitor.tracking:
                changed = monitor.changed()
                data = json.dumps(monitor.status(queue).model_dump(mode="json"))
                await resp.write(f"event: status\ndata: {data}\n\n".encode())
                try:
                    await asyncio.wait_for(changed.wait(), STREAM_REFRESH)
                except TimeoutError:
                    pass
            await resp.write(b"event: unavailable\ndata: {}\n\n")
        except ConnectionError:  # the app went away
            pass
        return resp

    return routes


def _own_queue(ctx: ApiContext, app: str, queue: str) -> str:
    cfg = ctx.config()
    mine = queues_of(cfg.tree, app_top(cfg.model, app, "ivr")) | \
        queues_of(cfg.tree, app_top(cfg.model, app, "in-app"))
    if queue not in mine:
        raise Problem(404, "Unknown queue", UNKNOWN_QUEUE)
    return queue


def _monitor(ctx: ApiContext) -> Any:
    monitor: Any = ctx.queues
    if monitor is None or not monitor.tracking:
        raise Problem(503, "Queues not followed", "queue status needs AMI "
                      "(engine.ami.password) and a live connection to it")
    return monitor
