"""Routes the mobile apps' SDK calls: call plans and device (push token) registration.

Every request passes the same doors in the same order: the per-address rate limit, the
app's api key (generic 401, see ``auth``), the per-key rate limit, then the body through
``input``. Only then may an answer reveal anything about apps, users or calls.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..routing.fallback import PlanError, clean_custom_data, dial_string, new_token, plan_call
from .auth import authenticate_app
from .context import ApiContext
from .guards import throttle_address, throttle_key
from .input import read_json_object
from .problems import Problem

log = logging.getLogger("ivr_engine.api")

DEVICE_FIELDS = ("push_token", "voip_token", "app_version", "os_version", "model")


def _invalid(detail: str, field: str) -> Problem:
    return Problem(422, "Invalid request", detail, field=field)


def _text(value: object, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit and value.isprintable()


def _plan_request(body: dict[str, Any]) -> tuple[float, bool, str, str | None, dict[str, str]]:
    """connectivity, data_path, caller, language and custom_data of a call-plan request."""
    score = body.get("connectivity")
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise _invalid("connectivity (a number 0..1) is required", "connectivity")
    data_path = body.get("data_path", True)
    if not isinstance(data_path, bool):
        raise _invalid("data_path must be true or false", "data_path")
    caller = body.get("caller") or ""
    if not _text(caller, 32):
        raise _invalid("caller must be a phone number string", "caller")
    language = body.get("language")
    if language is not None and not _text(language, 16):
        raise _invalid("language must be a code like en or fr", "language")
    try:
        custom = clean_custom_data(body.get("custom_data"))
    except ValueError as exc:
        raise _invalid(str(exc), "custom_data") from None
    return float(score), data_path, caller, language, custom


def _device_fields(body: dict[str, Any]) -> tuple[str, dict[str, str | None]]:
    """platform and the push tokens / app details of a device registration."""
    platform = body.get("platform")
    if platform not in ("ios", "android"):
        raise _invalid("platform must be ios or android", "platform")
    fields: dict[str, str | None] = {}
    for key in DEVICE_FIELDS:
        value = body.get(key)
        if value is not None and not _text(value, 512):
            raise _invalid(f"{key} must be a string", key)
        fields[key] = value
    if not fields["push_token"] and not fields["voip_token"]:
        raise _invalid("push_token (and for iOS voip_token) is required", "push_token")
    if platform == "android" and fields["voip_token"]:
        raise _invalid("voip_token is for iOS (PushKit) only", "voip_token")
    return platform, fields


def sdk_routes(ctx: ApiContext) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.post("/v1/apps/{app}/calls")
    async def plan(request: web.Request) -> web.Response:
        """The SDK asks VoIP or PSTN; a PSTN answer carries the number and a one-time token."""
        throttle_address(ctx, request)
        cfg = ctx.config()
        name = authenticate_app(cfg, request, request.match_info["app"])
        throttle_key(ctx, name)
        score, data_path, caller, language, custom = _plan_request(
            await read_json_object(request))
        app = cfg.routing.apps[name]
        now = ctx.clock()
        try:
            p = plan_call(app, score, data_path)
            token = new_token(app.token_digits, await ctx.store.active_tokens(name, now),
                              ctx.randbelow)
        except PlanError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
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
        """A user's app install registers its push tokens (iOS: VoIP token too). The app is
        named in the body, so the body is read (bounded, not yet trusted) before the key."""
        throttle_address(ctx, request)
        cfg = ctx.config()
        body = await read_json_object(request)
        app_name = authenticate_app(cfg, request, body.get("app"))
        throttle_key(ctx, app_name)
        user = body.get("user")
        spec = cfg.users.get(user) if isinstance(user, str) else None
        if spec is None:
            raise Problem(404, "Unknown user", f"no user named {user!r}", field="user")
        if spec.app != app_name:
            raise Problem(409, "Wrong app", f"user {user!r} is woken through app "
                          f"{spec.app!r}, not {app_name!r}", field="app")
        platform, fields = _device_fields(body)
        device = await ctx.store.upsert_device(
            user=user, app=app_name, platform=platform, push_token=fields["push_token"],
            voip_token=fields["voip_token"], app_version=fields["app_version"] or "",
            os_version=fields["os_version"] or "", model=fields["model"] or "", source="api")
        return web.json_response({"id": device.id, "user": user, "app": app_name,
                                  "platform": platform,
                                  "updated_at": device.updated_at.isoformat()}, status=201)

    return routes
