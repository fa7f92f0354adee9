"""The OpenAPI 3.1 document, generated from the routes the app serves and their declarations.

Nothing here is written by hand per route: the paths, methods, credentials and answers come
from each handler's :class:`~.routes.RouteSpec` (``routes.py``), the schemas from the pydantic
request and response models (request models as pydantic validates them, response models as
they serialise). Requests to ``GET /openapi.json`` (public) get the document of the running
app, built once.

HEAD, which aiohttp answers on every GET route, is implied by the GET operations and not
listed. The admin console's routes (``console/``: HTML pages, a cookie and a login form) are
declared like every route — the door enforces them — but left out (``document=False``): they
are not an API; ``tests/unit/test_console_auth.py`` holds them to their credential. A route registered without a declaration is left out and logged; the contract test
(``tests/unit/test_openapi.py``) fails on it.
"""

from __future__ import annotations

import json
import logging
from importlib import metadata
from typing import Any, Iterable

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .routes import (
    ADMIN,
    ADMIN_BASIC,
    APP_KEY,
    PROVIDER,
    PUBLIC,
    SESSION,
    ApiRoutes,
    Reply,
    RouteSpec,
    spec_of,
)
from .schemas import ProblemDocument

log = logging.getLogger("ivr_engine.api")

REF = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    APP_KEY.value: {"type": "http", "scheme": "bearer", "description": (
        "`Authorization: Bearer <the app's api_key>`. The key ships inside every copy of the "
        "app: it proves the app, never a user, so routes that take it alone neither read nor "
        "change anything of a user (an anonymous call plan's custom data is marked "
        "unverified). An unknown app, an app without a key and a wrong key get the same 401.")},
    SESSION.value: {"type": "http", "scheme": "bearer", "description": (
        "`Authorization: Bearer <session token>` from `POST /v1/apps/{app}/sessions`, which "
        "needs an assertion signed by the customer's backend naming the user: the app and "
        "the user are proven. Routes that act for a user take only this.")},
    ADMIN.value: {"type": "http", "scheme": "bearer", "description": (
        "Admin routes: `Authorization: Bearer <engine.api.admin_token>`; refused while no "
        "token is configured. Served only on `engine.api.admin_listen` when it is set.")},
    ADMIN_BASIC.value: {"type": "http", "scheme": "basic", "description": (
        "The admin token as an HTTP Basic password (any user name): "
        "`Authorization: Basic base64(<user>:<engine.api.admin_token>)`, the way uContact "
        "integrations send their Integra token. Only the routes that list it (SendSMS).")},
    PROVIDER.value: {"type": "apiKey", "in": "header", "name": "X-Twilio-Signature",
                     "description": (
        "An SMS provider's delivery report: the `callback_token` in the path, and the "
        "provider's own signature when the provider has its signing secret configured "
        "(Twilio `X-Twilio-Signature`, Vonage signed JWT in `Authorization`).")},
}
DESCRIPTION = """\
The HTTP API of ivr-engine: call plans, sessions and device registration for the mobile apps'
SDK, call context and transfers for agents, administration. Every error is an RFC 9457
problem document (`application/problem+json`); request bodies are JSON objects of at most
64 KiB. Every route is rate limited per client address; routes behind a credential also per
user, per app key and address, and per app (429 with Retry-After).
"""


def _version() -> str:
    try:
        return metadata.version("ivr-engine")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def declared_routes(router: web.UrlDispatcher) -> tuple[list[RouteSpec], list[str]]:
    """(the declarations of the routes served, the undeclared routes as "METHOD path")."""
    specs: list[RouteSpec] = []
    undeclared: list[str] = []
    for route in router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical if route.resource is not None else "?"
        spec = spec_of(route.handler)
        if spec is None:
            undeclared.append(f"{route.method} {path}")
        else:
            specs.append(spec)
    return specs, undeclared


def _models(specs: Iterable[RouteSpec]) -> list[tuple[type[BaseModel], str]]:
    wanted: dict[tuple[type[BaseModel], str], None] = {(ProblemDocument, "serialization"): None}
    for spec in specs:
        if spec.body is not None:
            wanted[(spec.body, "validation")] = None
        if spec.query is not None:
            wanted[(spec.query, "validation")] = None
        if spec.form is not None:
            wanted[(spec.form, "validation")] = None
        for r in spec.responses.values():
            if r.model is not None:
                wanted[(r.model, "serialization")] = None
    return list(wanted)


def _query_params(ref: dict[str, Any], refs: dict) -> list[dict[str, Any]]:
    """A query model's fields as OpenAPI parameters (the model's schema, inlined)."""
    schema = refs["defs"][ref["$ref"].rsplit("/", 1)[-1]]
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                 "schema": prop}
        if description:
            param["description"] = description
        out.append(param)
    return out


def _content(reply: Reply, refs: dict) -> dict[str, Any]:
    if reply.schema is not None:
        schema = dict(reply.schema)
    else:
        model = reply.model if reply.model is not None else ProblemDocument
        schema = refs[(model, "serialization")]
    return {reply.media_type: {"schema": schema}}


def _operation(spec: RouteSpec, refs: dict) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": spec.operation_id,
        "summary": spec.summary,
        "tags": [spec.tag],
        "security": [] if spec.public else [{s.value: []} for s in spec.security],
    }
    if spec.description:
        op["description"] = spec.description
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in spec.path_params]
    if spec.query is not None:
        params += _query_params(refs[(spec.query, "validation")], refs)
    if params:
        op["parameters"] = params
    if spec.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": refs[(spec.body, "validation")]}}}
        if spec.form is not None:
            op["requestBody"]["content"]["application/x-www-form-urlencoded"] = {
                "schema": refs[(spec.form, "validation")]}
    responses: dict[str, Any] = {}
    for status, reply in spec.responses.items():
        out: dict[str, Any] = {"description": reply.description or str(status)}
        if status != 204:
            out["content"] = _content(reply, refs)
        if reply.headers:
            out["headers"] = {k: dict(v) for k, v in reply.headers.items()}
        responses[str(status)] = out
    op["responses"] = responses
    return op


def build_document(router: web.UrlDispatcher) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes ``router`` serves."""
    specs, undeclared = declared_routes(router)
    specs = [s for s in specs if s.document]  # the console's pages are not an API
    for route in undeclared:
        log.warning("route %s has no declaration: it is missing from /openapi.json", route)
    refs, top = models_json_schema(_models(specs), ref_template=REF)
    refs = {**refs, "defs": top.get("$defs", {})}
    paths: dict[str, dict[str, Any]] = {}
    ids: set[str] = set()
    for spec in sorted(specs, key=lambda s: (s.path, s.method)):
        if spec.operation_id in ids:
            raise ValueError(f"two routes have the operation id {spec.operation_id!r}")
        ids.add(spec.operation_id)
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ivr-engine", "version": _version(), "description": DESCRIPTION},
        "paths": paths,
        "components": {"schemas": top.get("$defs", {}), "securitySchemes": SECURITY_SCHEMES},
    }


def openapi_routes() -> ApiRoutes:
    routes = ApiRoutes("engine")
    cache: dict[str, bytes] = {}

    @routes.get("/openapi.json", summary="This document (OpenAPI 3.1)", security=PUBLIC,
                responses={200: Reply(description="the OpenAPI document",
                                      schema={"type": "object"})})
    async def openapi_document(request: web.Request) -> web.Response:
        """Generated from the routes the engine serves and their pydantic models."""
        if "doc" not in cache:  # the router is frozen once the app runs
            cache["doc"] = json.dumps(build_document(request.app.router), indent=1).encode()
        return web.Response(body=cache["doc"], content_type="application/json")

    return routes
