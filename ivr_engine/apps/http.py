"""The mobile apps' routes.

- ``POST /v1/apps/{app}/calls`` (SDK key): the SDK asks VoIP or PSTN; a PSTN answer carries
  the app's fallback number and a one-time token to dial after it. The request passes the
  API's doors in order (api/): the per-address rate limit, the app's api key (generic 401),
  the per-key rate limit, then the body parser and the request model.
- ``GET /v1/admin/apps`` (admin token): every app with its status.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ..api.auth import require_admin
from ..api.context import ApiContext
from ..api.guards import throttle_address, throttle_key
from ..api.input import read_model
from ..api.problems import Problem
from ..api.routes import ADMIN_TOKEN, RATE_LIMITED, SDK_KEY, ApiRoutes
from ..api.schemas import reply
from ..lifecycle.auth import authenticate_sdk
from ..lifecycle.problems import UPDATE_REQUIRED
from ..livedata.targets import TargetError, resolve_target
from .plans import PlanError, dial_string, new_token, plan_call
from .schemas import (
    AppStatus,
    AppStatusList,
    CallPlanRequest,
    CallPlanResponse,
    PstnPlan,
    PushCredentials,
    SipTarget,
    VoipPlan,
)

log = logging.getLogger("ivr_engine.api")


def app_status(cfg, name: str) -> AppStatus:
    """An app's status from the running config: its warnings (missing push credential files,
    no access point) and a missing api_key."""
    spec, entry = cfg.model.apps[name], cfg.routing.apps.get(name)
    prefix = f"apps.{name}"
    problems = [str(w) for w in cfg.warnings
                if w.path == prefix or w.path.startswith(prefix + ".")]
    if spec.api_key is None:
        problems.append(f"{cfg.path}: {prefix}.api_key: not set: every SDK request of this app "
                        "is refused")
    if entry is None or not entry.active:
        status = "no-access-point"
    elif problems:
        status = "credential-problems"
    else:
        status = "active"
    return AppStatus(
        name=name, status=status, problems=problems, menu=entry.menu if entry else None,
        fallback_number=entry.fallback_number if entry else None,
        threshold=entry.threshold if entry else None,
        languages=list(entry.languages) if entry else [],
        api_key_configured=spec.api_key is not None,
        push=PushCredentials(apns=spec.push.apns is not None, fcm=spec.push.fcm is not None))


def app_routes(ctx: ApiContext) -> ApiRoutes:
    routes = ApiRoutes("apps")

    @routes.post(
        "/v1/apps/{app}/calls", summary="Plan a call: VoIP, or PSTN with a one-time token",
        security=SDK_KEY, body=CallPlanRequest, responses={201: CallPlanResponse},
        problems={409: "the app is inactive (no mobile-app access point), or has no fallback "
                  "number when data_path is false",
                  403: UPDATE_REQUIRED,
                  422: "a field is invalid (`field` names it), e.g. a `target` that is not a "
                  "node of the app's tree",
                  429: RATE_LIMITED,
                  503: "too many unexpired tokens for this app; retry shortly"})
    async def plan(request: web.Request) -> web.Response:
        """The SDK asks VoIP or PSTN; a PSTN answer carries the number and a one-time token
        (valid `token_ttl_seconds`, single use). `{app}` is the app's name; the key must be
        that app's `api_key`."""
        throttle_address(ctx, request)
        cfg = ctx.config()
        name = await authenticate_sdk(ctx, request, request.match_info["app"])
        throttle_key(ctx, name)
        req = await read_model(request, CallPlanRequest)
        caller, language, custom = req.caller or "", req.language, req.custom_data or {}
        app = cfg.routing.apps[name]
        now = ctx.clock()
        try:
            p = plan_call(app, req.connectivity, req.data_path)
            token = new_token(app.token_digits, await ctx.store.intents.active_tokens(name, now),
                              ctx.randbelow)
        except PlanError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        if req.target is not None:
            try:
                resolve_target(cfg.tree, app.menu, req.target)
            except TargetError as exc:
                raise Problem(422, "Invalid target", str(exc), field="target") from None
        lang = app.language_for(language)
        intent = await ctx.store.intents.add(app=name, token=token, caller=caller, language=lang,
                                            custom_data=custom, now=now,
                                            ttl_seconds=app.token_ttl_seconds,
                                            target=req.target)
        common = {"reason": p.reason, "app": name, "language": lang, "token": token,
                  "expires_at": intent.expires_at, "target": req.target}
        if p.mode == "pstn":
            assert p.number is not None  # a PSTN plan always has its number
            out: PstnPlan | VoipPlan = PstnPlan(mode="pstn", number=p.number,
                                                dial=dial_string(p.number, token), **common)
        else:
            out = VoipPlan(mode="voip", sip=SipTarget(extension=f"app-{name}",
                                                      headers={"X-IVR-Token": token}), **common)
        log.info("call plan for app %r: %s (%s)", name, p.mode, p.reason)
        return reply(CallPlanResponse(out), status=201)

    @routes.get("/v1/admin/apps", summary="Every app with its status", security=ADMIN_TOKEN,
                responses={200: AppStatusList}, tag="admin")
    async def list_apps(request: web.Request) -> web.Response:
        """Active, without an access point (inactive), or with credential problems (no
        api_key, push credential files missing when the config was last read)."""
        cfg = ctx.config()
        require_admin(cfg, request)
        return reply(AppStatusList(apps=[app_status(cfg, name) for name in cfg.model.apps]))

    return routes
