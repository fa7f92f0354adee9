"""Wake-up routes: device registration and test pushes.

- ``POST /v1/devices`` (a user's session): the user's app install registers its push tokens
  (iOS: its PushKit VoIP token too) so the engine can wake it before a call rings it. Only
  the session's user: the app's key alone proves no user, and whoever registers a user's
  tokens receives the caller number and name of every call to that user.
- ``POST /v1/admin/push-test`` (admin token): what ``ivr-engine push test`` does, over HTTP.
"""

from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from ..api.input import read_model
from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN, SESSION, ApiRoutes
from ..api.schemas import reply
from ..push import PushError
from ..users.directory import find
from .repo import DeviceRepo
from .schemas import (
    DeviceRequest,
    DeviceResponse,
    PushTestRequest,
    PushTestResponse,
    PushTestResult,
)

DEVICE_FIELDS = ("push_token", "voip_token", "app_version", "os_version", "model")


def device_routes(config: Callable[[], Any], devices: DeviceRepo, push: Any,
                  users: Any = None) -> ApiRoutes:
    """``push``: the push.PushService (None: this process sends no test pushes); ``users``:
    the UserRepo (the database's users; None: the config's only)."""
    routes = ApiRoutes("wakeup")

    @routes.post("/v1/devices", summary="Register the session user's app install and its "
                 "push tokens", security=SESSION, body=DeviceRequest,
                 responses={201: DeviceResponse},
                 problems={403: "`user` or `app` in the body is not the session's",
                           404: "the session's user is not one the engine wakes (`field`: "
                           "user)", 409: "the user is woken through another app (`field`: app)"})
    async def register_device(request: web.Request, who: Principal) -> web.Response:
        """`Authorization: Bearer <session token>`. `user` and `app` may be left out: they are
        the session's; a different one is refused (403)."""
        req = await read_model(request, DeviceRequest)
        app_name, user = who.app, who.user
        assert app_name is not None and user is not None
        if (req.user is not None and req.user != user) or \
                (req.app is not None and req.app != app_name):
            raise Problem(403, "Forbidden", "a session registers its own user's devices only",
                          field="user" if req.user not in (None, user) else "app")
        found = await find(config(), users, user)  # the database's user, else the config's
        if found is None:
            raise Problem(404, "Unknown user", f"user {user!r} is not one the engine wakes "
                          "(neither a database user nor under users:)", field="user")
        if found.record.app != app_name:
            raise Problem(409, "Wrong app", f"user {user!r} is woken through app "
                          f"{found.record.app!r}, not {app_name!r}", field="app")
        fields = req.model_dump(include=set(DEVICE_FIELDS))
        device = await devices.upsert(
            user=user, app=app_name, platform=req.platform, push_token=fields["push_token"],
            voip_token=fields["voip_token"], app_version=fields["app_version"] or "",
            os_version=fields["os_version"] or "", model=fields["model"] or "", source="api")
        return reply(DeviceResponse(id=device.id, user=user, app=app_name,
                                    platform=req.platform, updated_at=device.updated_at),
                     status=201)

    @routes.post("/v1/admin/push-test", summary="Send a test wake-up push to a user's devices",
                 security=ADMIN, body=PushTestRequest, responses={200: PushTestResponse},
                 problems={404: "no such app, or the user has no device registered for it "
                           "(`field` says which)",
                           503: "push notifications are not available in this process"})
    async def push_test(request: web.Request, who: Principal) -> web.Response:
        """Through the app's push credentials, to each device the user registered for the
        app; each result is the provider's answer (as `ivr-engine push test` prints it)."""
        cfg = config()
        req = await read_model(request, PushTestRequest)
        if req.app not in cfg.model.apps:
            raise Problem(404, "Unknown app", f"no app named {req.app!r}", field="app")
        if push is None:
            raise Problem(503, "Push unavailable", "this engine has no push service")
        found = await devices.for_user(req.user, req.app)
        if not found:
            raise Problem(404, "No device", f"user {req.user!r} has no device registered for "
                          f"app {req.app!r}", field="user")
        results = []
        for d in found:
            try:
                r = await push.test(req.app, d)
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
