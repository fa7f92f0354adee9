"""The call plan route of the mobile apps' SDK: ``POST /v1/apps/{app}/calls``.

The SDK asks VoIP or PSTN; a PSTN answer carries the app's fallback number and a one-time
token to dial after it. The request passes the API's doors in order (api/): the per-address
rate limit, the app's api key (generic 401), the per-key rate limit, then the body parser.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..api.auth import authenticate_app
from ..api.context import ApiContext
from ..api.guards import throttle_address, throttle_key
from ..api.input import is_text, read_json_object
from ..api.problems import Problem, invalid
from .plans import PlanError, clean_custom_data, dial_string, new_token, plan_call

log = logging.getLogger("ivr_engine.api")

def _plan_request(body: dict[str, Any]) -> tuple[float, bool, str, str | None, dict[str, str]]:
    """connectivity, data_path, caller, language and custom_data of a call-plan request."""
    score = body.get("connectivity")
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise invalid("connectivity (a number 0..1) is required", "connectivity")
    data_path = body.get("data_path", True)
    if not isinstance(data_path, bool):
        raise invalid("data_path must be true or false", "data_path")
    caller = body.get("caller") or ""
    if not is_text(caller, 32):
        raise invalid("caller must be a phone number string", "caller")
    language = body.get("language")
    if language is not None and not is_text(language, 16):
        raise invalid("language must be a code like en or fr", "language")
    try:
        custom = clean_custom_data(body.get("custom_data"))
    except ValueError as exc:
        raise invalid(str(exc), "custom_data") from None
    return float(score), data_path, caller, language, custom


def app_routes(ctx: ApiContext) -> web.RouteTableDef:
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

    return routes
