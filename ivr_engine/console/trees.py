"""The Trees page: the IVR tree of a scope (everything, a DID, an app) drawn by Graphviz, and
the "try it" box — an entry, keys and a time walked by the simulator (``ivr/simulate.py``,
what ``ivr-engine simulate`` runs), its path lit on the graph by ``console.js``.

- ``GET /console/trees?scope=all|entry:<DID>|app:<name>[&entry=&keys=&at=]``: the page
  (with a walk when ``keys`` is given: the page works without scripts);
- ``GET /console/trees/graph?scope=&gen=``: the graph alone; ``204`` while the drawing of
  generation ``gen`` is still current (the page asks every few seconds: a reload or a
  schedule opening redraws it);
- ``GET /console/trees/walk?entry=&keys=&at=``: the walk alone (htmx swaps it in).
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from markupsafe import Markup

from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import CONSOLE, ApiRoutes, Reply, query_of
from ..api.schemas import QueryModel, Text
from ..ivr.simulate import parse_dtmf, simulate
from ..routing.entry import after_token, route_app, route_pstn
from .dot import Scope, ScopeError, scopes, tree_dot, walk_ids
from .graphviz import GraphCache, GraphvizError
from .pages import page

HTML = Reply(description="an HTML page or fragment", media_type="text/html",
             schema={"type": "string"})


class TreeQuery(QueryModel):
    scope: Text(200, "all, entry:<DID> or app:<name>") | None = None
    entry: Text(64, "a dialled number, or app:<name>") | None = None
    keys: Text(64, "keys as `ivr-engine simulate --dtmf` takes them") | None = None
    at: Text(40, "ISO 8601 time; default now") | None = None
    gen: Text(20, "the drawing the page shows") | None = None


def parse_scope(text: str | None) -> Scope:
    if not text or text == "all":
        return Scope()
    kind, _, value = text.partition(":")
    if kind not in ("entry", "app") or not value:
        raise Problem(422, "Invalid request", "scope: all, entry:<DID> or app:<name>",
                      field="scope")
    return Scope(kind, value)


def scope_param(scope: Scope) -> str:
    return "all" if scope.kind == "all" else f"{scope.kind}:{scope.value}"


def default_entry(cfg: Any, scope: Scope) -> str:
    if scope.kind == "entry":
        return scope.value
    if scope.kind == "app":
        return f"app:{scope.value}"
    dids = [s.value for s in scopes(cfg) if s.kind == "entry"]
    return dids[0] if dids else ""


def _at(text: str | None, cfg: Any, now: dt.datetime) -> dt.datetime:
    if not text:
        return now.astimezone(ZoneInfo(cfg.engine.timezone))
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time like 2026-11-23T10:15") from None
    return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(cfg.engine.timezone))


def walk(cfg: Any, entry: str, keys: str, at_text: str | None,
         now: dt.datetime) -> dict[str, Any]:
    """What the simulator does with a caller on ``entry`` (a DID, or ``app:<name>`` for the
    app's own calls) pressing ``keys`` at ``at_text`` (default now). ValueError: bad input."""
    pressed = parse_dtmf(keys)
    at = _at(at_text, cfg, now)
    if entry.startswith("app:"):
        decision = route_app(cfg.routing, entry[4:])
    else:
        decision = route_pstn(cfg.routing, entry, "")
        if decision.via == "app-fallback":  # a caller who keyed a valid token
            decision = after_token(cfg.routing, decision, True)
    result = simulate(cfg.tree, decision, caller="", keys=pressed, at=at)
    result["at"] = at.isoformat(timespec="minutes")
    result["ids"] = walk_ids(result["path"], result["destination"])
    return result


def _open_states(cfg: Any, now: dt.datetime) -> str:
    return "".join("1" if m.schedule is not None and m.schedule.is_open(now) else "0"
                   for m in cfg.tree.menus.values())


async def drawing(graphs: GraphCache, cfg: Any, scope: Scope, now: dt.datetime) -> str:
    """The scope's SVG for the config in force (drawn again when a schedule opens or
    closes: the open-now state is on the graph)."""
    key = f"{scope_param(scope)}|{_open_states(cfg, now)}"  # ScopeError from the build
    svg = await graphs.svg(cfg, key, lambda: tree_dot(cfg, scope, now))
    return svg.decode()


def add_tree_pages(routes: ApiRoutes, parts: Any, graphs: GraphCache) -> None:
    config, clock = parts.config, parts.clock

    def generation(cfg: Any, now: dt.datetime) -> str:
        states = zlib.crc32(_open_states(cfg, now).encode())
        return f"{graphs.generation(cfg)}-{states:x}"

    async def graph_context(cfg: Any, scope: Scope) -> dict[str, Any]:
        now = clock()
        try:
            svg, error = Markup(await drawing(graphs, cfg, scope, now)), None
        except ScopeError as exc:
            svg, error = None, str(exc)
        except GraphvizError as exc:
            svg, error = None, f"the graph cannot be drawn: {exc}"
        return {"svg": svg, "graph_error": error, "gen": generation(cfg, now),
                "scope_param": scope_param(scope)}

    def walk_context(cfg: Any, q: TreeQuery) -> dict[str, Any]:
        if q.keys is None:
            return {"walk": None, "walk_error": None}
        try:
            return {"walk": walk(cfg, q.entry or "", q.keys, q.at, clock()),
                    "walk_error": None}
        except ValueError as exc:
            return {"walk": None, "walk_error": str(exc)}

    @routes.get("/console/trees", summary="The IVR trees", security=CONSOLE, query=TreeQuery,
                responses={200: HTML})
    async def trees(request: web.Request, who: Principal) -> web.Response:
        cfg, q = config(), query_of(request)
        scope = parse_scope(q.scope)
        return page("trees.html", who=who, active="trees", scope=scope,
                    scopes=[(scope_param(s), str(s)) for s in scopes(cfg)],
                    entry=q.entry or default_entry(cfg, scope), keys=q.keys or "",
                    at=q.at or "", menus=len(cfg.tree.menus),
                    **await graph_context(cfg, scope), **walk_context(cfg, q))

    @routes.get("/console/trees/graph", summary="A tree's drawing (fragment)",
                security=CONSOLE, query=TreeQuery, responses={200: HTML, 204: HTML})
    async def graph(request: web.Request, who: Principal) -> web.Response:
        cfg, q = config(), query_of(request)
        scope = parse_scope(q.scope)
        if q.gen is not None and q.gen == generation(cfg, clock()):
            return web.Response(status=204)  # the page shows the current drawing
        return page("_graph.html", **await graph_context(cfg, scope))

    @routes.get("/console/trees/walk", summary="A simulated caller's walk (fragment)",
                security=CONSOLE, query=TreeQuery, responses={200: HTML})
    async def try_walk(request: web.Request, who: Principal) -> web.Response:
        cfg, q = config(), query_of(request)
        return page("_walk.html", **walk_context(cfg, q.model_copy(
            update={"keys": q.keys or ""})))
