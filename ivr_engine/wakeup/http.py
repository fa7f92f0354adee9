"""Device registration for push-then-wait: ``POST /v1/devices``.

A user's app install registers its push tokens (iOS: its PushKit VoIP token too) so the engine
can wake it before a call rings it. The app is named in the body, so the body is read
(bounded, not yet trusted) before the app's key is checked.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api.auth import authenticate_app
from ..api.context import ApiContext
from ..api.guards import throttle_address, throttle_key
from ..api.input import is_text, read_json_object
from ..api.problems import Problem, invalid

DEVICE_FIELDS = ("push_token", "voip_token", "app_version", "os_version", "model")


def _device_fields(body: dict[str, Any]) -> tuple[str, dict[str, str | None]]:
    """platform and the push tokens / app details of a device registration."""
    platform = body.get("platform")
    if platform not in ("ios", "android"):
        raise invalid("platform must be ios or android", "platform")
    fields: dict[str, str | None] = {}
    for key in DEVICE_FIELDS:
        value = body.get(key)
        if value is not None and not is_text(value, 512):
            raise invalid(f"{key} must be a string", key)
        fields[key] = value
    if not fields["push_token"] and not fields["voip_token"]:
        raise invalid("push_token (and for iOS voip_token) is required", "push_token")
    if platform == "android" and fields["voip_token"]:
        raise invalid("voip_token is for iOS (PushKit) only", "voip_token")
    return platform, fields


def device_routes(ctx: ApiContext) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.post("/v1/devices")
    async def register_device(request: web.Request) -> web.Response:
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
