"""Route declarations: one decorator per route registers it with aiohttp and records what the
OpenAPI document says about it.

A feature's ``http.py`` builds an :class:`ApiRoutes` (a drop-in for ``web.RouteTableDef``:
``app.add_routes(routes)`` registers it) and declares each handler::

    routes = ApiRoutes("apps")

    @routes.post("/v1/apps/{app}/calls", summary="Plan a call: VoIP or PSTN",
                 security=SDK_KEY, body=CallPlanRequest, responses={201: CallPlanResponse},
                 problems={409: "the app is inactive ...", 429: RATE_LIMITED})
    async def plan(request): ...

The declaration (:class:`RouteSpec`) rides on the handler (``handler.api_route``), so
``openapi.py`` builds the document from the routes the aiohttp router really serves: a route
registered without a declaration is missing from the document, which the contract test
reports. Problems every route of a kind can answer are added here, not repeated per route:
401 for a route behind a credential, 400/413/415/422 for a route that reads a body, 500
everywhere (an unexpected failure is a logged problem document, never a traceback).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Awaitable, Callable, Iterator, Mapping, Sequence, Union

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Security(str, Enum):
    """The credential a route needs: the names are the document's security schemes."""

    SDK_KEY = "sdkKey"  # Authorization: Bearer <the app's api_key>
    ADMIN_TOKEN = "adminToken"  # Authorization: Bearer <engine.api.admin_token>
    PUBLIC = "public"  # none


SDK_KEY, ADMIN_TOKEN, PUBLIC = Security.SDK_KEY, Security.ADMIN_TOKEN, Security.PUBLIC

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Reply:
    """One documented answer: a pydantic model (or a raw JSON Schema) in a media type."""

    model: type[BaseModel] | None = None
    description: str = ""
    media_type: str = JSON
    schema: Mapping[str, Any] | None = None  # instead of a model (e.g. text/plain)
    headers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name: header obj


# what a problem answer may be declared as: a description, or a Reply (a problem model with
# extensions, headers)
ProblemDecl = Union[str, Reply]
ResponseDecl = Union[type[BaseModel], Reply]

RATE_LIMITED = Reply(description="over a rate limit: retry after the Retry-After delay",
                     media_type=PROBLEM_JSON, headers={"Retry-After": {
                         "description": "seconds to wait", "required": True,
                         "schema": {"type": "integer", "minimum": 1}}})
UNAUTHORIZED = Reply(description="the credential is missing, wrong, or not configured (the "
                     "door is shut when it is not configured)", media_type=PROBLEM_JSON,
                     headers={"WWW-Authenticate": {"required": True,
                                                   "schema": {"type": "string"}}})
BODY_PROBLEMS: dict[int, ProblemDecl] = {
    400: "the body is not a JSON object (malformed, not UTF-8, nested deeper than 32 levels)",
    413: "the body is larger than 64 KiB",
    415: "the body is not sent as Content-Type: application/json (UTF-8)",
    422: "a field is invalid: `field` names it",
}
SERVER_ERROR = "unexpected failure: logged by the engine, never shown"


@dataclass(frozen=True)
class RouteSpec:
    """What the OpenAPI document says about one route."""

    method: str
    path: str
    operation_id: str
    summary: str
    description: str
    tag: str
    security: Security
    body: type[BaseModel] | None
    responses: Mapping[int, Reply]  # every status, problems included

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{([^}:]+)", self.path)


def _reply(decl: ResponseDecl) -> Reply:
    return decl if isinstance(decl, Reply) else Reply(decl, decl.__doc__ or "")


def _problem(decl: ProblemDecl) -> Reply:
    if isinstance(decl, Reply):
        return decl if decl.media_type == PROBLEM_JSON else replace(decl, media_type=PROBLEM_JSON)
    return Reply(description=decl, media_type=PROBLEM_JSON)


def make_spec(method: str, path: str, handler: Handler, *, summary: str, security: Security,
              tag: str, body: type[BaseModel] | None = None,
              responses: Mapping[int, ResponseDecl],
              problems: Mapping[int, ProblemDecl] | None = None) -> RouteSpec:
    """A route's declaration, with the problems its kind implies added."""
    if not isinstance(security, Security):
        raise TypeError(f"{method} {path}: security must be a Security, got {security!r}")
    out: dict[int, Reply] = {status: _reply(decl) for status, decl in responses.items()}
    implied: dict[int, ProblemDecl] = {500: SERVER_ERROR}
    if security is not PUBLIC:
        implied[401] = UNAUTHORIZED
    if body is not None:
        implied.update(BODY_PROBLEMS)
    for status, decl in {**implied, **(problems or {})}.items():
        out[status] = _problem(decl)
    doc = inspect.cleandoc(handler.__doc__ or "")
    return RouteSpec(method.upper(), path, handler.__name__, summary, doc, tag, security, body,
                     dict(sorted(out.items())))


def spec_of(handler: Any) -> RouteSpec | None:
    """The declaration a handler carries, if any."""
    return getattr(handler, "api_route", None)


class ApiRoutes(Sequence[web.AbstractRouteDef]):
    """``web.RouteTableDef`` whose decorators also declare the route (see the module doc)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._defs: list[web.AbstractRouteDef] = []

    def __getitem__(self, index: Any) -> Any:
        return self._defs[index]

    def __len__(self) -> int:
        return len(self._defs)

    def __iter__(self) -> Iterator[web.AbstractRouteDef]:
        return iter(self._defs)

    def route(self, method: str, path: str, *, summary: str, security: Security,
              responses: Mapping[int, ResponseDecl], body: type[BaseModel] | None = None,
              problems: Mapping[int, ProblemDecl] | None = None,
              tag: str | None = None) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            handler.api_route = make_spec(  # type: ignore[attr-defined]
                method, path, handler, summary=summary, security=security,
                tag=tag or self.tag, body=body, responses=responses, problems=problems)
            self._defs.append(web.route(method, path, handler))
            return handler
        return register

    def get(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        """A GET route; aiohttp also answers HEAD on it (the document lists GET only)."""
        return self.route("GET", path, **declaration)

    def post(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **declaration)
