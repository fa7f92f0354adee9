"""Wake-up routes: device registration and test pushes.

- ``POST /v1/devices`` (SDK key): a user's app install registers its push tokens (iOS: its
  PushKit VoIP token too) so the engine can wake it before a call rings it. The app is named
  in the body, so the body is read (bounded, not yet trusted) before the app's key is checked.
- ``POST /v1/admin/push-test`` (admin token): what ``ivr-engine push test`` does, over HTTP.
"""

from __future__ import annotations

from aiohttp import web

from ..api.auth import require_admin
from ..api.context import ApiContext
from ..api.guards import throttle_address, throttle_key
from ..api.input import read_json_object, read_model, validate_body
from ..api.problems import Problem
from ..api.routes import ADMIN_TOKEN, RATE_LIMITED, SDK_KEY, ApiRoutes
from ..api.schemas import reply
from ..lifecycle.auth import authenticate_sdk
from ..lifecycle.problems import UPDATE_REQUIRED
from ..push import PushError
from .schemas import (
    DeviceRequest,
    DeviceResponse,
    PushTestRequest,
    PushTestResponse,
    PushTestResult,
)

DEVICE_FIELDS = ("push_token", "voip_token", "app_version", "os_version", "model")


def device_routes(ctx: ApiContext) -> ApiRoutes:
    routes = ApiRoutes("devices")

    @routes.post("/v1/devices", summary="Register a user's app install and its push tokens",
                 security=SDK_KEY, body=DeviceRequest, responses={201: DeviceResponse},
                 problems={404: "no such user (`field`: user)",
                           409: "the user is woken through another app (`field`: app)",
                           403: UPDATE_REQUIRED, 429: RATE_LIMITED})
    async def register_device(request: web.Request) -> web.Response:
        """The key must be that of the app named in the body."""
        throttle_address(ctx, request)
        cfg = ctx.config()
        body = await read_json_object(request)
        app_name = await authenticate_sdk(ctx, request, body.get("app"), body.get("user"))
        throttle_key(ctx, app_name)
        user = body.get("user")
        spec = cfg.users.get(user) if isinstance(user, str) else None
        if spec is None:
            raise Problem(404, "Unknown user", f"no user named {user!r}", field="user")
        if spec.app != app_name:
            raise Problem(409, "Wrong app", f"user {user!r} is woken through app "
                          f"{spec.app!r}, not {app_name!r}", field="app")
        req = validate_body(DeviceRequest, body)
        platform, fields = req.platform, req.model_dump(include=set(DEVICE_FIELDS))
        device = await ctx.store.devices.upsert(
            user=user, app=app_name, platform=platform, push_token=fields["push_token"],
            voip_token=fields["voip_token"], app_version=fields["app_version"] or "",
            os_version=fields["os_version"] or "", model=fields["model"] or "", source="api")
        return reply(DeviceResponse(id=device.id, user=user, app=app_name, platform=platform,
                                    updated_at=device.updated_at), status=201)

    @routes.post("/v1/admin/push-test", summary="Send a test wake-up push to a user's devices",
                 security=ADMIN_TOKEN, body=PushTestRequest, responses={200: PushTestResponse},
                 problems={404: "no such app, or the user has no device registered for it "
                           "(`field` says which)",
                           503: "push notifications are not available in this process"},
                 tag="admin")
    async def push_test(request: web.Request) -> web.Response:
        """Through the app's push credentials, to each device the user registered for the
        app; each result is the provider's answer (as `ivr-engine push test` prints it)."""
        cfg = ctx.config()
        require_admin(cfg, request)
        req = await read_model(request, PushTestRequest)
        if req.app not in cfg.model.apps:
            raise Problem(404, "Unknown app", f"no app named {req.app!r}", field="app")
        if ctx.push is None:
            raise Problem(503, "Push unavailable", "this engine has no push service")
        devices = await ctx.store.devices.for_user(req.user, req.app)
        if not devices:
            raise Problem(404, "No device", f"user {req.user!r} has no device registered for "
                          f"app {req.app!r}", field="user")
        results = []
        for d in devices:
            try:
                r = await ctx.push.test(req.app, d)
            except PushError as exc:
                results.append(PushTestResult(device_id=d.id, platform=d.platform, ok=False,
                                              reason=str(exc)))
                continue
            results.append(PushTestResult(
                device_id=d.id, platform=d.platform, ok=r.ok, provider=r.provider,
                status=r.status, reason=r.reason, token_removed=r.token_invalid,
                elapsed_ms=round(r.elapsed_ms, 1)))
        return reply(PushTestResponse(app=req.app, user=req.user, results=results))

    return routes
