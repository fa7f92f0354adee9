"""The session token as an SDK credential: the hook the SDK routes that act for a user (call
plans, device registration) call instead of ``api.auth.authenticate_app``.

The app's api key is tried first, exactly as before (constant time); then a token that looks
like a session token (``ivs_…``) is looked up by its hash. An open session of that app (and,
when the route names one, that user) lets the request in; an ended one is refused with how it
ended (401), or with UpdateRequired (403) when a mandatory release ended it. Anything else
falls through to ``authenticate_app``'s generic 401.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api.auth import authenticate_app, bearer_token, key_matches
from .service import lifecycle_of
from .sessions import looks_like_session_token

async def authenticate_sdk(ctx: Any, request: web.Request, name: object,
                           user: object = None) -> str:
    """The app ``name`` if the request carries its api key or an open session token of it
    (of ``user`` when given); else a 401 (or the session's refusal)."""
    cfg = ctx.config()
    app = cfg.model.apps.get(name) if isinstance(name, str) else None
    token = bearer_token(request)
    if app is not None and key_matches(token, app.api_key):
        return name  # type: ignore[return-value]
    if app is not None and looks_like_session_token(token) and (
            user is None or isinstance(user, str)):
        assert token is not None and isinstance(name, str)
        session = await lifecycle_of(ctx).sessions.check(token, name, user)  # type: ignore[arg-type]
        if session is not None:
            return name
    return authenticate_app(cfg, request, name)
