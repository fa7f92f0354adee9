"""HTTP API (aiohttp): SDK call plans, call context for agents, transfers.

Errors are RFC 9457 problem documents (``application/problem+json``).

- ``POST /v1/apps/{app}/calls`` — the SDK asks VoIP or PSTN; PSTN answers carry the fallback
  number and a one-time token to dial after it. Needs ``Authorization: Bearer <api_key>`` when
  the app has an ``api_key``.
- ``GET /v1/calls/{id}`` — what the engine knows of a call (app, path, caller, language,
  custom data) for screen pops.
- ``POST /v1/calls/{id}/transfer`` — ``{"to": "queue:<name>" | "endpoint:<name>"}``.
- ``POST /v1/devices`` — a user's app registers its push tokens ``{"app", "user",
  "platform": "ios"|"android", "push_token", "voip_token", "app_version", "os_version",
  "model"}`` (Bearer api key when the app has one).
- ``GET /v1/health``.
``/v1/calls/*`` needs ``Authorization: Bearer <engine.api.admin_token>`` when one is set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from aiohttp import web

from ..calls.session import TransferRequest
from ..ivr.destinations import parse_destination
from ..routing.fallback import PlanError, clean_custom_data, dial_string, new_token, plan_call
from ..routing.transfer import TransferRefused, check_transfer

log = logging.getLogger("ivr_engine.api")

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, request: web.Request | None = None,
            **extra: Any) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.path
    body.update(extra)
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM)


@dataclass
class ApiContext:
    config: Callable[[], Any]  # returns the current Config snapshot
    store: Any
    registry: Any
    engine: Any = None  # the Engine: active CallSessions (transfers inside the IVR)
    ami: Any = None  # AmiClient: transfers of calls already handed to the dialplan
    clock: Callable[[], dt.datetime] = field(
        default=lambda: dt.datetime.now(dt.timezone.utc))
    randbelow: Callable[[int], int] = secrets.randbelow


def _bearer_ok(request: web.Request, secret: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), secret.encode())


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text=json.dumps({
            "type": "about:blank", "title": "Malformed JSON", "status": 400,
            "detail": "the request body is not valid JSON", "instance": request.path}),
            content_type=PROBLEM) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({
            "type": "about:blank", "title": "Malformed JSON", "status": 400,
            "detail": "the request body must be a JSON object", "instance": request.path}),
            content_type=PROBLEM)
    return body


def build_app(ctx: ApiContext) -> web.Application:
    routes = web.RouteTableDef()

    def admin_denied(request: web.Request) -> web.Response | None:
        token = ctx.config().engine.api.admin_token
        if token is not None and not _bearer_ok(request, token.get_secret_value()):
            return problem(401, "Unauthorized", "a valid admin Bearer token is required",
                           request)
        return None

    @routes.get("/v1/health")
    async def health(request: web.Request) -> web.Response:
        engine = ctx.engine
        notifier = engine.services.notifier if engine else None
        return web.json_response({
            "status": "ok",
            "ari_connected": bool(engine and engine.ari.connected),
            "calls_in_ivr": len(engine.calls) if engine else 0,
            "context_webhook": asdict(notifier.stats) if notifier else None,
        })

    @routes.post("/v1/apps/{app}/calls")
    async def plan(request: web.Request) -> web.Response:
        cfg = ctx.config()
        name = request.match_info["app"]
        app_cfg = cfg.model.apps.get(name)
        app = cfg.routing.apps.get(name)
        if app_cfg is None or app is None:
            return problem(404, "Unknown app", f"no app named {name!r}", request)
        if app_cfg.api_key is not None and not _bearer_ok(request,
                                                          app_cfg.api_key.get_secret_value()):
            return problem(401, "Unauthorized", "a valid Bearer api key for this app is required",
                           request)
        body = await _json_body(request)
        score = body.get("connectivity")
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            return problem(422, "Invalid request", "connectivity (a number 0..1) is required",
                           request, field="connectivity")
        data_path = body.get("data_path", True)
        caller = body.get("caller", "") or ""
        language = body.get("language")
        if not isinstance(data_path, bool):
            return problem(422, "Invalid request", "data_path must be true or false", request,
                           field="data_path")
        if not isinstance(caller, str) or len(caller) > 32:
            return problem(422, "Invalid request", "caller must be a phone number string",
                           request, field="caller")
        if language is not None and (not isinstance(language, str) or len(language) > 16):
            return problem(422, "Invalid request", "language must be a code like en or fr",
                           request, field="language")
        try:
            custom = clean_custom_data(body.get("custom_data"))
        except ValueError as exc:
            return problem(422, "Invalid request", str(exc), request, field="custom_data")
        try:
            p = plan_call(app, float(score), data_path)
        except PlanError as exc:
            return problem(exc.status, exc.title, exc.detail, request)
        now = ctx.clock()
        try:
            token = new_token(app.token_digits, await ctx.store.active_tokens(name, now),
                              ctx.randbelow)
        except PlanError as exc:
            return problem(exc.status, exc.title, exc.detail, request)
        lang = app.language_for(language)
        intent = await ctx.store.add_intent(app=name, token=token, caller=caller, language=lang,
                                            custom_data=custom, now=now,
                                            ttl_seconds=app.token_ttl_seconds)
        out: dict[str, Any] = {
            "mode": p.mode, "reason": p.reason, "app": name, "language": lang,
            "token": token, "expires_at": intent.expires_at.isoformat(),
        }
        if p.mode == "pstn":
            out["number"] = p.number
            out["dial"] = dial_string(p.number, token)  # type: ignore[arg-type]
        else:
            out["sip"] = {"extension": f"app-{name}", "headers": {"X-IVR-Token": token}}
        log.info("call plan for app %r: %s (%s)", name, p.mode, p.reason)
        return web.json_response(out, status=201)

    @routes.post("/v1/devices")
    async def register_device(request: web.Request) -> web.Response:
        """A user's app install registers its push tokens (iOS: VoIP token too)."""
        cfg = ctx.config()
        body = await _json_body(request)
        app_name, user = body.get("app"), body.get("user")
        app_cfg = cfg.model.apps.get(app_name) if isinstance(app_name, str) else None
        if app_cfg is None:
            return problem(404, "Unknown app", f"no app named {app_name!r}", request,
                           field="app")
        if app_cfg.api_key is not None and not _bearer_ok(request,
                                                          app_cfg.api_key.get_secret_value()):
            return problem(401, "Unauthorized", "a valid Bearer api key for this app is required",
                           request)
        spec = cfg.users.get(user) if isinstance(user, str) else None
        if spec is None:
            return problem(404, "Unknown user", f"no user named {user!r}", request,
                           field="user")
        if spec.app != app_name:
            return problem(409, "Wrong app", f"user {user!r} is woken through app "
                           f"{spec.app!r}, not {app_name!r}", request, field="app")
        platform = body.get("platform")
        if platform not in ("ios", "android"):
            return problem(422, "Invalid request", "platform must be ios or android", request,
                           field="platform")
        fields: dict[str, str | None] = {}
        for key in ("push_token", "voip_token", "app_version", "os_version", "model"):
            value = body.get(key)
            if value is not None and (not isinstance(value, str) or len(value) > 512
                                      or not value.isprintable()):
                return problem(422, "Invalid request", f"{key} must be a string", request,
                               field=key)
            fields[key] = value
        if not fields["push_token"] and not fields["voip_token"]:
            return problem(422, "Invalid request", "push_token (and for iOS voip_token) is "
                           "required", request, field="push_token")
        if platform == "android" and fields["voip_token"]:
            return problem(422, "Invalid request", "voip_token is for iOS (PushKit) only",
                           request, field="voip_token")
        device = await ctx.store.upsert_device(
            user=user, app=app_name, platform=platform, push_token=fields["push_token"],
            voip_token=fields["voip_token"], app_version=fields["app_version"] or "",
            os_version=fields["os_version"] or "", model=fields["model"] or "", source="api")
        return web.json_response({"id": device.id, "user": user, "app": app_name,
                                  "platform": platform,
                                  "updated_at": device.updated_at.isoformat()}, status=201)

    @routes.get("/v1/calls/{call_id}")
    async def get_call(request: web.Request) -> web.Response:
        denied = admin_denied(request)
        if denied:
            return denied
        info = ctx.registry.get(request.match_info["call_id"])
        if info is None:
            return problem(404, "Unknown call", "no such call (or it ended before the engine "
                           "last started)", request)
        return web.json_response(info.as_json())

    @routes.post("/v1/calls/{call_id}/transfer")
    async def transfer(request: web.Request) -> web.Response:
        denied = admin_denied(request)
        if denied:
            return denied
        call_id = request.match_info["call_id"]
        info = ctx.registry.get(call_id)
        if info is None:
            return problem(404, "Unknown call", f"no such call {call_id!r}", request)
        body = await _json_body(request)
        try:
            dest = parse_destination(body.get("to"))
            check_transfer(ctx.config().routing.queues_by_root, info.root_menu, info.app, dest)
        except ValueError as exc:
            return problem(422, "Invalid request", str(exc), request, field="to")
        except TransferRefused as exc:
            log.info("transfer of %s to %s refused: %s", call_id, dest, exc.detail)
            return problem(exc.status, "Transfer refused", exc.detail, request)
        session = ctx.engine.calls.get(call_id) if ctx.engine else None
        if session is not None and info.state == "ivr":
            done = asyncio.get_running_loop().create_future()
            session.events.put_nowait(TransferRequest(dest, done))
            try:
                ok = await asyncio.wait_for(done, 5)
            except TimeoutError:
                ok = False
            if ok:
                return web.json_response({"status": "transferred", "to": str(dest),
                                          "via": "ivr"}, status=202)
        if info.state == "ended":
            return problem(409, "Call ended", f"call {call_id!r} has ended", request)
        if ctx.ami is None:
            return problem(503, "Transfer unavailable", "the call has left the IVR and AMI is "
                           "not configured (engine.ami.password)", request)
        dp = ctx.config().engine.dialplan
        context = dp.queue if dest.kind == "queue" else dp.endpoint
        variables = {"IVR_DESTINATION": str(dest), "IVR_LANGUAGE": info.language}
        if dest.kind == "endpoint":
            variables["IVR_DIAL_TIMEOUT"] = str(dp.endpoint_ring_seconds)
        try:
            # queue and endpoint names travel as the extension (see dialplan/)
            await ctx.ami.redirect(info.channel_name, context, variables, exten=dest.target)
        except Exception as exc:  # noqa: BLE001 - reported to the client as a problem
            return problem(502, "Transfer failed", f"Asterisk refused the redirect: {exc}",
                           request)
        ctx.registry.update(call_id, destination=str(dest),
                            transfers=info.transfers + [str(dest)])
        return web.json_response({"status": "transferred", "to": str(dest), "via": "ami"},
                                 status=202)

    app = web.Application(client_max_size=64 * 1024)
    app.add_routes(routes)
    return app


async def serve(app: web.Application, listen: str) -> None:
    """Serve until cancelled (run it in the engine's TaskGroup)."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, int(port))
    await site.start()
    log.info("HTTP API listening on %s", listen)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
