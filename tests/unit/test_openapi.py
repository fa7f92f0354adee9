"""The OpenAPI document: valid, generated for exactly the routes the app serves, every route
declaring its credential, every non-public route refusing without it (derived from the
document, so a new route is covered without touching this file), and the handlers' answers
matching it."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ivr_engine.api.openapi import build_document
from ivr_engine.api.routes import PUBLIC, ApiRoutes, spec_of

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    ENDED_CALL,
    KEYS,
    api_fixture,
    assert_problem,
)

# the only routes anyone may call without a credential; a new public route must be added
# here on purpose
PUBLIC_ROUTES = {("GET", "/v1/health"), ("GET", "/openapi.json"), ("GET", "/healthz"),
                 ("GET", "/readyz"), ("GET", "/metrics"),
                 ("GET", "/l/{app}/install"), ("GET", "/l/{app}/open"),
                 ("GET", "/.well-known/apple-app-site-association"),
                 ("GET", "/.well-known/assetlinks.json"),
                 # the web widget: public for the apps that enable it (edge/http.py)
                 ("GET", "/w/{app}"), ("GET", "/w/{app}/menu"), ("POST", "/w/{app}/calls"),
                 ("OPTIONS", "/w/{app}/calls"), ("GET", "/w-static/{name}.js"),
                 ("GET", "/w-static/{name}.css")}


async def fetch_document(api) -> dict:
    r = await api.raw("GET", "/openapi.json")
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    return r.json()


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def served(api) -> set[tuple[str, str]]:
    """(method, path) the aiohttp router serves; HEAD is implied by GET. The console's
    pages are left out of the document on purpose (``document=False``; their credential is
    held by tests/unit/test_console_auth.py)."""
    return {(r.method, r.resource.canonical) for r in api.server.app.router.routes()
            if r.method != "HEAD" and getattr(spec_of(r.handler), "document", True)}


def filled(path: str, value: str = "x") -> str:
    return re.sub(r"\{[^}]+\}", value, path)


# ---------------------------------------------------------------- the document

async def test_the_document_is_valid_openapi_3_1(api):
    doc = await fetch_document(api)
    assert doc["openapi"].startswith("3.1")
    validate_spec(doc)
    print(f"\nopenapi: {sum(1 for _ in operations(doc))} operations, "
          f"{len(doc['components']['schemas'])} schemas")


async def test_every_served_route_is_documented_and_vice_versa(api):
    doc = await fetch_document(api)
    documented = {(method, path) for method, path, _ in operations(doc)}
    assert served(api) - documented == set(), "served but not in the document: declare them"
    assert documented - served(api) == set(), "documented but not served"
    heads = {r.resource.canonical for r in api.server.app.router.routes() if r.method == "HEAD"
             and getattr(spec_of(r.handler), "document", True)}
    assert heads <= {path for method, path in documented if method == "GET"}


async def test_every_route_declares_its_credential(api):
    doc = await fetch_document(api)
    schemes = doc["components"]["securitySchemes"]
    assert set(schemes) == {"appKey", "session", "adminToken", "adminBasic",
                            "providerSignature"}
    assert all(s == {"type": "http", "scheme": "basic" if name == "adminBasic" else "bearer",
                     "description": s["description"]}
               for name, s in schemes.items() if name != "providerSignature")
    public = set()
    for method, path, op in operations(doc):
        assert "security" in op, f"{method} {path} declares no security"
        if op["security"] == []:
            public.add((method, path))
            continue
        accepted = [next(iter(alt)) for alt in op["security"]]
        assert accepted in (["appKey"], ["session"], ["session", "appKey"], ["adminToken"],
                            ["adminToken", "adminBasic"],  # uContact's SendSMS paths
                            ["providerSignature"]), (method, path, accepted)
        assert "401" in op["responses"], f"{method} {path} does not document its 401"
        if "session" in accepted:
            assert "403" in op["responses"], f"{method} {path}: UpdateRequired undocumented"
    assert public == PUBLIC_ROUTES
    print("\n| route | credential |\n| --- | --- |")
    for method, path, op in sorted(operations(doc), key=lambda o: (o[1], o[0])):
        credential = " or ".join(next(iter(a)) for a in op["security"]) or "public"
        print(f"| {method} {path} | {credential} |")


def test_an_undeclared_route_is_left_out_of_the_document():
    from aiohttp import web

    app = web.Application()
    plain = web.RouteTableDef()

    @plain.get("/nope")
    async def nope(request):  # pragma: no cover - never called
        return web.Response()

    declared = ApiRoutes("t")

    @declared.get("/yes", summary="yes", security=PUBLIC, responses={})
    async def yes(request):  # pragma: no cover - never called
        return web.Response()

    app.add_routes(plain)
    app.add_routes(declared)
    assert list(build_document(app.router)["paths"]) == ["/yes"]


def test_security_must_be_declared():
    routes = ApiRoutes("t")
    with pytest.raises(TypeError):
        routes.get("/x", summary="x", security="public", responses={})(  # type: ignore[arg-type]
            _handler)


async def _handler(request):  # pragma: no cover - never called
    raise AssertionError


# ---------------------------------------------------------------- answers match the document

class Contract:
    """Validates answers against the document's schemas (JSON Schema 2020-12, $refs into
    components)."""

    def __init__(self, doc: dict):
        self.doc = doc
        self.registry = Registry().with_resource(
            "urn:api", Resource.from_contents(doc, default_specification=DRAFT202012))

    def check(self, method: str, path: str, reply) -> None:
        op = self.doc["paths"][path][method.lower()]
        assert str(reply.status) in op["responses"], (method, path, reply.status, reply.body)
        content = op["responses"][str(reply.status)]["content"]
        media = reply.headers["content-type"].split(";")[0]
        assert media in content, (method, path, media)
        schema = {"$ref": "urn:api#/paths/" + path.replace("~", "~0").replace("/", "~1")
                  + f"/{method.lower()}/responses/{reply.status}/content/"
                  + media.replace("/", "~1") + "/schema"}
        jsonschema.Draft202012Validator(schema, registry=self.registry).validate(reply.json())


async def test_answers_match_the_document(api):
    doc = await fetch_document(api)
    contract = Contract(doc)
    admin = [("Authorization", b"Bearer " + ADMIN_TOKEN.encode())]
    seen = set()

    async def call(method, path, template, body=None, key=None, headers=()):
        if body is not None:
            reply = await api.post(path, body, key=key)
        else:
            reply = await api.raw(method, path, list(headers))
        contract.check(method, template, reply)
        seen.add((method, template, reply.status))
        return reply

    plan = "/v1/apps/{app}/calls"
    assert (await call("POST", "/v1/apps/customer/calls", plan, {"connectivity": 0.9},
                       KEYS["customer"])).json()["mode"] == "voip"
    assert (await call("POST", "/v1/apps/customer/calls", plan,
                       {"connectivity": 0.1, "custom_data": {"order": 42, "vip": True}},
                       KEYS["customer"])).json()["mode"] == "pstn"
    await call("POST", "/v1/apps/legacy/calls", plan, {"connectivity": 0.5}, "legacy-key-00000000000000000000000000000")
    await call("POST", "/v1/apps/customer/calls", plan, {"connectivity": "high"},
               KEYS["customer"])
    await call("POST", "/v1/apps/customer/calls", plan, b"{nope", KEYS["customer"])
    alice = await api.login("customer", "alice")
    device = {"platform": "android", "push_token": "t" * 40}
    await call("POST", "/v1/devices", "/v1/devices", device, alice)
    await call("POST", "/v1/devices", "/v1/devices", {**device, "user": "bob"}, alice)
    await call("POST", "/v1/devices", "/v1/devices", device, KEYS["customer"])
    await call("GET", f"/v1/calls/{ENDED_CALL}", "/v1/calls/{call_id}", headers=admin)
    await call("GET", "/v1/calls/nope", "/v1/calls/{call_id}", headers=admin)
    transfer = "/v1/calls/{call_id}/transfer"
    await call("POST", f"/v1/calls/{ENDED_CALL}/transfer", transfer, {"to": "queue:sales"},
               ADMIN_TOKEN)
    await call("POST", f"/v1/calls/{ENDED_CALL}/transfer", transfer, {"to": "queue:nope"},
               ADMIN_TOKEN)
    await call("POST", f"/v1/calls/{ENDED_CALL}/transfer", transfer, {"to": 3}, ADMIN_TOKEN)
    for path in ("/v1/health", "/v1/admin/apps", "/v1/admin/calls", "/healthz", "/readyz"):
        await call("GET", path, path, headers=admin)
    await call("POST", "/v1/admin/reload", "/v1/admin/reload", headers=admin)
    push = "/v1/admin/push-test"
    await call("POST", push, push, {"app": "customer", "user": "alice"}, ADMIN_TOKEN)
    await call("POST", push, push, {"app": "customer", "user": "nobody"}, ADMIN_TOKEN)
    await call("POST", push, push, {"app": "customer"}, ADMIN_TOKEN)
    await call("GET", "/v1/admin/apps", "/v1/admin/apps")
    statuses = sorted({s for _, _, s in seen})
    assert statuses == [200, 201, 400, 401, 403, 404, 409, 422], statuses


async def test_the_problem_documents_schema_allows_extensions(api):
    doc = await fetch_document(api)
    problem = doc["components"]["schemas"]["ProblemDocument"]
    assert problem["required"] == ["title", "status", "detail", "instance"]
    assert json.dumps(doc["paths"]["/v1/admin/reload"]["post"]["responses"]["422"]).count(
        "ReloadProblem") == 1
