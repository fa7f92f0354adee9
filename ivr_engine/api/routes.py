"""Route declarations: one decorator per route registers it with aiohttp and records what the
door enforces and the OpenAPI document says about it.

A feature's ``http.py`` builds an :class:`ApiRoutes` (``app.add_routes(routes)`` registers it)
and declares each handler::

    routes = ApiRoutes("apps")

    @routes.post("/v1/apps/{app}/calls", summary="Plan a call: VoIP or PSTN",
                 security=(APP_KEY, SESSION), body=CallPlanRequest,
                 responses={201: CallPlanResponse}, problems={409: "the app is inactive"})
    async def plan(request: web.Request, who: Principal) -> web.Response: ...

A route declares the credentials it accepts (``security``: one :class:`Security` or a tuple
of alternatives) and, when it reads query parameters, their model (``query``). The door
(``door.py``) enforces both before the handler runs: a handler of a route behind a
credential is called as ``handler(request, who)`` with the authenticated
:class:`~.principal.Principal`, a public one as ``handler(request)``; the validated query is
``query_of(request)``. No handler checks a credential by hand.

The declaration (:class:`RouteSpec`) rides on the registered handler (``handler.api_route``),
so ``openapi.py`` builds the document from the routes the aiohttp router really serves: a
route registered without a declaration is missing from the document (the contract test
reports it) and the door refuses it (500: a route nobody declared is a bug, not an open
door). Problems every route of a kind can answer are added here, not repeated per route: 429
everywhere (the per-address limit), 401 for a route behind a credential, 403
UpdateRequired for one that takes a session token, 400/413/415/422 for a
route that reads a body, 422 for one with query or path parameters, 500 everywhere (an
unexpected failure is a logged problem document, never a traceback), 503 everywhere (the
database did not answer in time).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Awaitable, Callable, Iterator, Mapping, Sequence, Union

from aiohttp import web
from pydantic import BaseModel

from .schemas import UpdateRequiredProblem

Handler = Callable[..., Awaitable[web.StreamResponse]]


class Security(str, Enum):
    """A credential a route accepts: the values are the document's security schemes."""

    PUBLIC = "public"  # none
    APP_KEY = "appKey"  # Authorization: Bearer <the app's api_key>: proves the app, no user
    SESSION = "session"  # Authorization: Bearer <a user's session token>: the app and the user
    ADMIN = "adminToken"  # Authorization: Bearer <engine.api.admin_token>
    # Authorization: Basic base64(<any user>:<engine.api.admin_token>): the admin token as an
    # HTTP Basic password, the way uContact integrations authenticate (routes that opt in)
    ADMIN_BASIC = "adminBasic"
    PROVIDER = "providerSignature"  # an SMS provider's signed callback (see sms/webhooks.py)
    # the admin console (console/): a browser's session cookie (api/cookies.py), issued by
    # a login that presented the admin token; requests that change something also carry the
    # session's CSRF token (X-CSRF-Token header or a `csrf` form field)
    CONSOLE = "consoleSession"
    # the admin token as the `token` field of a urlencoded form: the console's login only
    ADMIN_FORM = "adminForm"


PUBLIC, APP_KEY, SESSION = Security.PUBLIC, Security.APP_KEY, Security.SESSION
ADMIN, PROVIDER, ADMIN_BASIC = Security.ADMIN, Security.PROVIDER, Security.ADMIN_BASIC
CONSOLE, ADMIN_FORM = Security.CONSOLE, Security.ADMIN_FORM
#: credentials that stand for the engine's administrator: served on the admin listener
ADMIN_SCHEMES = frozenset({ADMIN, ADMIN_BASIC, CONSOLE, ADMIN_FORM})

# what the door leaves on a request for the handler (aiohttp's typed request storage)
PRINCIPAL: web.RequestKey[Any] = web.RequestKey("principal", object)
QUERY: web.RequestKey[Any] = web.RequestKey("query", object)

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

RATE_LIMITED = Reply(description="over a rate limit (per client address, per user, per app, "
                     "or too many failed credentials from this address): retry after the "
                     "Retry-After delay", media_type=PROBLEM_JSON, headers={"Retry-After": {
                         "description": "seconds to wait", "required": True,
                         "schema": {"type": "integer", "minimum": 1}}})
UNAUTHORIZED = Reply(description="the credential is missing, wrong, of another app or user, "
                     "or not configured (the door is shut when it is not configured)",
                     media_type=PROBLEM_JSON,
                     headers={"WWW-Authenticate": {"required": True,
                                                   "schema": {"type": "string"}}})
UPDATE_REQUIRED = Reply(UpdateRequiredProblem, "the device's app version is below a "
                        "mandatory release: `minimum_version` and `store_url` say what to "
                        "install", media_type=PROBLEM_JSON)
BODY_PROBLEMS: dict[int, ProblemDecl] = {
    400: "the body is not a JSON object (malformed, not UTF-8, nested deeper than 32 levels)",
    413: "the body is larger than 64 KiB",
    415: "the body is not sent as Content-Type: application/json (UTF-8)",
    422: "a field is invalid: `field` names it",
}
QUERY_PROBLEM = "a query parameter is invalid, repeated or out of range: `field` names it"
PATH_PROBLEM = "a path parameter is not printable text (NUL, a control character): `field` " \
    "names it"
CSRF_REFUSED = "the console session's CSRF token is missing or wrong (X-CSRF-Token header " \
    "or `csrf` form field)"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SERVER_ERROR = "unexpected failure: logged by the engine, never shown"
DATABASE_BUSY = Reply(description="the database did not answer in time (locked, unreachable): "
                      "retry after the Retry-After delay", media_type=PROBLEM_JSON,
                      headers={"Retry-After": {"description": "seconds to wait",
                                               "required": True,
                                               "schema": {"type": "integer", "minimum": 1}}})


@dataclass(frozen=True)
class RouteSpec:
    """What the door enforces and the OpenAPI document says about one route."""

    method: str
    path: str
    operation_id: str
    summary: str
    description: str
    tag: str
    security: tuple[Security, ...]  # alternatives, in the order the door tries them
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    responses: Mapping[int, Reply]  # every status, problems included
    form: type[BaseModel] | None = None  # the body may also come form-encoded, as this model
    document: bool = True  # in /openapi.json (the console's HTML pages are not: not an API)
    private: bool = False  # served on the admin listener only, whatever its security
    login: str | None = None  # a browser page: a refused GET is sent here (303), not a 401

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{([^}:]+)", self.path)

    @property
    def public(self) -> bool:
        return self.security == (PUBLIC,)

    @property
    def admin(self) -> bool:
        """Served on the admin listener (when one is configured) and only there."""
        return self.private or (not self.public and set(self.security) <= ADMIN_SCHEMES)


def _reply(decl: ResponseDecl) -> Reply:
    return decl if isinstance(decl, Reply) else Reply(decl, decl.__doc__ or "")


def _problem(decl: ProblemDecl) -> Reply:
    if isinstance(decl, Reply):
        return decl if decl.media_type == PROBLEM_JSON else replace(decl, media_type=PROBLEM_JSON)
    return Reply(description=decl, media_type=PROBLEM_JSON)


def _security(security: Security | Sequence[Security], where: str) -> tuple[Security, ...]:
    out = (security,) if isinstance(security, Security) else tuple(security)
    if not out or not all(isinstance(s, Security) for s in out):
        raise TypeError(f"{where}: security must be a Security or a tuple of them, "
                        f"got {security!r}")
    if PUBLIC in out and len(out) > 1:
        raise TypeError(f"{where}: a public route accepts no credential")
    if ADMIN in out and not set(out) <= {ADMIN, ADMIN_BASIC}:
        raise TypeError(f"{where}: an admin route accepts the admin token only")
    if ADMIN_BASIC in out and ADMIN not in out:
        raise TypeError(f"{where}: adminBasic is an alternative to adminToken, not alone")
    if (CONSOLE in out or ADMIN_FORM in out) and len(out) > 1:
        raise TypeError(f"{where}: a console route accepts its one credential only")
    return out


def make_spec(method: str, path: str, handler: Handler, *, summary: str,
              security: Security | Sequence[Security], tag: str,
              body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
              responses: Mapping[int, ResponseDecl],
              problems: Mapping[int, ProblemDecl] | None = None,
              form: type[BaseModel] | None = None, document: bool = True,
              private: bool = False, login: str | None = None) -> RouteSpec:
    """A route's declaration, with the problems its kind implies added."""
    schemes = _security(security, f"{method} {path}")
    out: dict[int, Reply] = {status: _reply(decl) for status, decl in responses.items()}
    implied: dict[int, ProblemDecl] = {500: SERVER_ERROR, 503: DATABASE_BUSY,
                                       429: RATE_LIMITED}
    if schemes != (PUBLIC,):
        implied[401] = UNAUTHORIZED
    if SESSION in schemes:
        implied[403] = UPDATE_REQUIRED
    if CONSOLE in schemes and method.upper() not in SAFE_METHODS:
        implied[403] = CSRF_REFUSED
    if body is not None:
        implied.update(BODY_PROBLEMS)
    if query is not None:
        implied.setdefault(422, QUERY_PROBLEM)
    if "{" in path:
        implied.setdefault(422, PATH_PROBLEM)
    for status, decl in {**implied, **(problems or {})}.items():
        out[status] = _problem(decl)
    doc = inspect.cleandoc(handler.__doc__ or "")
    return RouteSpec(method.upper(), path, handler.__name__, summary, doc, tag, schemes, body,
                     query, dict(sorted(out.items())), form, document, private, login)


def spec_of(handler: Any) -> RouteSpec | None:
    """The declaration a registered handler carries, if any."""
    return getattr(handler, "api_route", None)


def query_of(request: web.Request) -> Any:
    """The route's query parameters as the door validated them (its ``query`` model)."""
    return request[QUERY]


def _bind(handler: Handler, spec: RouteSpec) -> Handler:
    """The aiohttp handler: the declared one, given the principal the door authenticated."""
    if spec.public:
        async def serve(request: web.Request) -> web.StreamResponse:
            return await handler(request)
    else:
        async def serve(request: web.Request) -> web.StreamResponse:
            return await handler(request, request[PRINCIPAL])
    serve.__name__ = serve.__qualname__ = handler.__name__
    serve.__doc__ = handler.__doc__
    serve.api_route = spec  # type: ignore[attr-defined]
    return serve


class ApiRoutes(Sequence[web.AbstractRouteDef]):
    """``web.RouteTableDef`` whose decorators also declare the route (see the module doc)."""

    def __init__(self, tag: str, *, document: bool = True, private: bool = False,
                 login: str | None = None) -> None:
        """``document``: the routes appear in /openapi.json; ``private``: served on the admin
        listener only; ``login``: browser pages, a refused GET is redirected there."""
        self.tag = tag
        self.document, self.private, self.login = document, private, login
        self._defs: list[web.AbstractRouteDef] = []

    def __getitem__(self, index: Any) -> Any:
        return self._defs[index]

    def __len__(self) -> int:
        return len(self._defs)

    def __iter__(self) -> Iterator[web.AbstractRouteDef]:
        return iter(self._defs)

    def specs(self) -> list[RouteSpec]:
        return [spec_of(d.handler) for d in self._defs]  # type: ignore[attr-defined,misc]

    def route(self, method: str, path: str, *, summary: str,
              security: Security | Sequence[Security], responses: Mapping[int, ResponseDecl],
              body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
              problems: Mapping[int, ProblemDecl] | None = None,
              tag: str | None = None,
              form: type[BaseModel] | None = None) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            spec = make_spec(method, path, handler, summary=summary, security=security,
                             tag=tag or self.tag, body=body, query=query, responses=responses,
                             problems=problems, form=form, document=self.document,
                             private=self.private, login=self.login)
            self._defs.append(web.route(method, path, _bind(handler, spec)))
            return handler
        return register

    def get(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        """A GET route; aiohttp also answers HEAD on it (the document lists GET only)."""
        return self.route("GET", path, **declaration)

    def post(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **declaration)

    def put(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **declaration)

    def delete(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **declaration)
