"""The livedata routes (the app's key, or a user's session of the app).

- ``GET /v1/apps/{app}/menu?surface=ivr|in-app&lang=xx``: the app's own tree (visual IVR or
  in-app menu) with labels, open-now and queue waits, and the app's in-app texts; an
  ``ETag`` so the app can poll with ``If-None-Match`` and get ``304`` while nothing changed.
- ``GET /v1/queues/{name}/status``: a queue of the app's own tree (either surface) as
  app_queue reports it, with wait estimates; the app is the one whose key is presented.
- ``GET /v1/queues/{name}/events``: the same status as server-sent events, at every change of
  that queue (a change of another queue does not wake it) and at least every 5 s; capped per
  app key and address, per user, per address and in all, and ended after its lifetime with
  a ``retry:`` hint (``streams.py``).

An inactive app (``apps/activation.py``) is refused on every one of them: ``409`` with a
``reason``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import datetime as dt
from typing import Callable

from aiohttp import web

from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import APP_KEY, SESSION, ApiRoutes, Reply, query_of
from ..api.schemas import reply
from ..apps.activation import INACTIVE, active_app
from .schemas import MenuQuery, MenuTree, QueueStatus
from .streams import StreamGate, Ticket, retry_field
from .texts import app_texts
from .tree import export_tree, queues_of

SURFACES = ("ivr", "in-app")
NOT_MODIFIED = Reply(description="not modified: the ETag sent in If-None-Match still holds",
                     schema={})
UNKNOWN_QUEUE = "no such queue in this app's tree"
STREAM_REFRESH = 5.0  # seconds: the stream repeats the status at least this often (waits tick)
WRITE_TIMEOUT = 10.0  # seconds: a client that reads nothing for this long is dropped


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def livedata_routes(config: Callable[[], Any], queues: Any,
                    clock: Callable[[], dt.datetime],
                    streams: StreamGate | None = None) -> ApiRoutes:
    """``queues``: the livedata.monitor.QueueMonitor (None: AMI not configured);
    ``streams``: who holds the event streams (default: the config's caps, no ceiling)."""
    routes = ApiRoutes("livedata")
    gate = streams if streams is not None else StreamGate(
        lambda: config().engine.api.streams)

    @routes.get(
        "/v1/apps/{app}/menu", summary="The app's own tree: visual IVR or in-app menu",
        security=(SESSION, APP_KEY), query=MenuQuery,
        responses={200: Reply(MenuTree, "the tree", headers={"ETag": {
            "required": True, "schema": {"type": "string"}}}), 304: NOT_MODIFIED},
        problems={409: INACTIVE,
                  422: "`surface` is not ivr or in-app, or `lang` is not a language code"})
    async def menu(request: web.Request, who: Principal) -> web.StreamResponse:
        """Query: `surface` (`ivr`, default, or `in-app`), `lang` (labels in this language,
        then its base language, the app's default, the engine's default). Every node id, of
        either surface, is a deep-link `target` for `POST /v1/apps/{app}/calls`. `texts`: the
        app's in-app texts (after-hours, closed, outside-app, queue-full). Send the `ETag`
        back in `If-None-Match` to get `304` while nothing changed."""
        cfg = config()
        app = active_app(cfg, who.app)  # an active app has both trees
        q: MenuQuery = query_of(request)
        surface, lang = q.surface, q.lang
        top = app.menu if surface == "ivr" else app.in_app_menu
        assert top is not None
        data = export_tree(cfg.model, cfg.tree, app.app, top, lang, clock(),
                           queues.wait_of if queues is not None else lambda q: None)
        tree = MenuTree.model_validate({**data, "surface": surface,
                                        "texts": app_texts(cfg.model, app, lang)})
        body = json.dumps(tree.model_dump(mode="json")).encode()
        etag = _etag(body)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if _matches(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/json", headers=headers)

    @routes.get(
        "/v1/queues/{name}/status", summary="A queue of the app's tree: callers, agents, "
        "estimated waits", security=(SESSION, APP_KEY), responses={200: QueueStatus},
        problems={404: UNKNOWN_QUEUE, 409: INACTIVE,
                  503: "queues are not followed now (AMI not configured or not connected)"})
    async def queue_status(request: web.Request, who: Principal) -> web.Response:
        """Callers waiting (by position, no identities), agents, longest wait, and the
        estimated wait of a new caller and of each position, with the method and its
        confidence (null when the data is too thin). Only queues of the presenting app's
        own tree (either surface)."""
        queue = _own_queue(config(), who, request.match_info["name"])
        return reply(_monitor(queues).status(queue))

    @routes.get(
        "/v1/queues/{name}/events", summary="A queue's status as server-sent events",
        security=(SESSION, APP_KEY), responses={200: Reply(
            description="`text/event-stream`: a `retry:` hint, then an `event: status` whose "
            "`data` is the queue's status (the QueueStatus document) at once, at every "
            f"change of this queue and at least every {STREAM_REFRESH:g} s; after the "
            "stream's lifetime, a `retry:` hint and `event: end` (reconnect after the hint)",
            media_type="text/event-stream", schema={"type": "string"})},
        problems={404: UNKNOWN_QUEUE, 406: "the request does not accept text/event-stream",
                  409: INACTIVE,
                  503: "queues are not followed now (AMI not configured or not connected)"})
    async def queue_events(request: web.Request, who: Principal) -> web.StreamResponse:
        """The status of `GET /v1/queues/{name}/status`, pushed: the app shows positions
        moving without polling. Needs `Accept: text/event-stream`. Streams are capped per
        app key and address, per user and per address (429 with `Retry-After` past a cap,
        `engine.api.streams`); a stream ends after `max_lifetime_seconds` with `event: end`
        and a `retry:` hint, and with `event: unavailable` when AMI goes away."""
        queue = _own_queue(config(), who, request.match_info["name"])
        if "text/event-stream" not in request.headers.get("Accept", ""):
            raise Problem(406, "Not Acceptable", "this route streams text/event-stream; send "
                          "Accept: text/event-stream")
        monitor = _monitor(queues)
        with gate.open(who) as ticket:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
            await resp.prepare(request)
            try:
                await _stream(resp, monitor, queue, ticket, gate.limits().retry_seconds)
            except (ConnectionError, TimeoutError):  # the app went away, or reads nothing
                pass
        return resp

    return routes


async def _write(resp: web.StreamResponse, data: bytes) -> None:
    async with asyncio.timeout(WRITE_TIMEOUT):
        await resp.write(data)


async def _stream(resp: web.StreamResponse, monitor: Any, queue: str, ticket: Ticket,
                  retry: float) -> None:
    """The events of one stream, until its lifetime ends or AMI goes away."""
    await _write(resp, retry_field(retry) + b"\n")
    while monitor.tracking:
        changed = monitor.changed(queue)
        data = json.dumps(monitor.status(queue).model_dump(mode="json"))
        await _write(resp, f"event: status\ndata: {data}\n\n".encode())
        left = ticket.remaining()
        if left <= 0:
            await _write(resp, retry_field(retry) + b'event: end\ndata: {"reason": '
                         b'"lifetime"}\n\n')
            return
        try:
            await asyncio.wait_for(changed.wait(), min(STREAM_REFRESH, left))
        except TimeoutError:
            pass
    await _write(resp, b"event: unavailable\ndata: {}\n\n")


def _own_queue(cfg: Any, who: Principal, queue: str) -> str:
    app = active_app(cfg, who.app)
    mine = queues_of(cfg.tree, app.menu) | queues_of(cfg.tree, app.in_app_menu)
    if queue not in mine:
        raise Problem(404, "Unknown queue", UNKNOWN_QUEUE)
    return queue


def _monitor(monitor: Any) -> Any:
    if monitor is None or not monitor.tracking:
        raise Problem(503, "Queues not followed", "queue status needs AMI "
                      "(engine.ami.password) and a live connection to it")
    return monitor
