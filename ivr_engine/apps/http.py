"""The mobile apps' routes.

- ``POST /v1/apps/{app}/calls`` (the app's key, or a user's session): the SDK asks VoIP or
  PSTN; a PSTN answer carries the app's fallback number and a one-time token to dial after
  it. With the app's key alone the plan is anonymous (its custom data unverified); with a
  session the token carries the session's user, verified.
- ``GET /v1/admin/apps`` (admin token): every app with its status: active or why not, and
  whether its install / open links are sent by SMS.

An inactive app (``activation.py``) gets no plan: ``409`` with a ``reason``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable

from aiohttp import web

from ..api.input import read_model
from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN, APP_KEY, PROBLEM_JSON, SESSION, ApiRoutes, Reply
from ..api.schemas import reply
from ..livedata.targets import TargetError, app_target
from ..routing.entry import number_variants
from ..sms.applinks import LinkError, choose_app
from .activation import ReasonProblem
from .guard_db import DatabaseGuard, MemoryGuard, plan_digits
from .plans import PlanError, check_room, dial_string, draw_token, plan_call
from .repo import IntentRepo, TokenSpaceFull
from .schemas import (
    AppLinks,
    AppStatus,
    AppStatusList,
    CallPlanRequest,
    CallPlanResponse,
    PlanConflictProblem,
    PstnPlan,
    PushCredentials,
    SipTarget,
    VoipPlan,
)

log = logging.getLogger("ivr_engine.api")


def app_status(cfg, name: str) -> AppStatus:
    """An app's status from the running config: active or why not, its warnings (missing push
    credential files, inactive) and a missing api_key, whether its links are sent by SMS."""
    spec, entry = cfg.model.apps[name], cfg.routing.apps[name]
    prefix = f"apps.{name}"
    problems = [str(w) for w in cfg.warnings
                if w.path == prefix or w.path.startswith(prefix + ".")]
    if spec.api_key is None:
        problems.append(f"{cfg.path}: {prefix}.api_key: not set: every SDK request of this app "
                        "is refused")
    reason = entry.inactive_reason
    if reason is not None:
        status = "switched-off" if reason == "switched-off" else "no-access-point"
    elif problems:
        status = "credential-problems"
    else:
        status = "active"
    try:
        choose_app(cfg, name)  # what an app-link SMS for this app is refused with, if it is
        links = AppLinks(sends=True, reason=None)
    except LinkError as exc:
        links = AppLinks(sends=False, reason=str(exc))
    return AppStatus(
        name=name, status=status, active=reason is None, reason=reason, problems=problems,
        menu=entry.menu, in_app_menu=entry.in_app_menu, app_links=links,
        fallback_number=entry.fallback_number, threshold=entry.threshold,
        languages=list(entry.languages), api_key_configured=spec.api_key is not None,
        push=PushCredentials(apns=spec.push.apns is not None, fcm=spec.push.fcm is not None))


def app_routes(config: Callable[[], Any], intents: IntentRepo,
               clock: Callable[[], dt.datetime], randbelow: Callable[[int], int],
               guard: MemoryGuard | DatabaseGuard) -> ApiRoutes:
    """``guard``: the fallback callers' guard the calls share (apps/guard_db.py: a hardened
    app's plans get long tokens; when the guard cannot be read, too)."""
    routes = ApiRoutes("apps")

    @routes.post(
        "/v1/apps/{app}/calls", summary="Plan a call: VoIP, or PSTN with a one-time token",
        security=(SESSION, APP_KEY), body=CallPlanRequest, responses={201: CallPlanResponse},
        problems={409: Reply(PlanConflictProblem, "the app is inactive (`reason`: "
                             "switched-off, no-in-app-access-point, no-ivr-access-point), or "
                             "has no fallback number when data_path is false (`reason`: "
                             "no-fallback-number)", media_type=PROBLEM_JSON),
                  422: "a field is invalid (`field` names it), e.g. a `target` that is not a "
                  "node of the app's trees (IVR or in-app)",
                  503: "too many unexpired tokens for this app; retry shortly"})
    async def plan(request: web.Request, who: Principal) -> web.Response:
        """The SDK asks VoIP or PSTN; a PSTN answer carries the number and a one-time token
        (valid `token_ttl_seconds`, single use). `{app}` is the app's name. With a user's
        session token the plan (and the call that uses it) carries that user, verified; with
        the app's `api_key` alone it is anonymous and its custom data is marked unverified."""
        cfg = config()
        name = who.app
        assert name is not None
        req = await read_model(request, CallPlanRequest)
        caller, language, custom = req.caller or "", req.language, req.custom_data or {}
        app = cfg.routing.apps[name]
        now = clock()
        digits = await plan_digits(guard, cfg.model, cfg.routing, name,
                                   number_variants(caller), now)
        try:
            p = plan_call(app, req.connectivity, req.data_path)
            check_room(await intents.active_count(name, now), digits)
        except PlanError as exc:
            if exc.status == 409:
                assert exc.reason is not None
                raise ReasonProblem(409, exc.title, exc.detail, exc.reason,
                                    PlanConflictProblem) from None
            raise Problem(exc.status, exc.title, exc.detail) from None
        if req.target is not None:
            try:
                app_target(cfg.tree, app, req.target)
            except TargetError as exc:
                raise Problem(422, "Invalid target", str(exc), field="target") from None
        lang = app.language_for(language)
        try:
            intent = await intents.add(app=name, draw=lambda: draw_token(digits, randbelow),
                                       caller=caller, language=lang, custom_data=custom,
                                       now=now, ttl_seconds=app.token_ttl_seconds,
                                       target=req.target, user=who.user)
        except TokenSpaceFull:
            raise Problem(503, "Too many pending calls", "no free call token for this app; "
                          "retry shortly") from None
        token = intent.token
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

    @routes.get("/v1/admin/apps", summary="Every app with its status", security=ADMIN,
                responses={200: AppStatusList})
    async def list_apps(request: web.Request, who: Principal) -> web.Response:
        """Active or why not (`reason`: its switch is off, or it lacks a mobile-app access
        point in the in-app or the IVR structure), credential problems (no api_key, push
        credential files missing when the config was last read), and whether agents can send
        its install / open links by SMS (`app_links`)."""
        cfg = config()
        return reply(AppStatusList(apps=[app_status(cfg, name) for name in cfg.model.apps]))

    return routes
