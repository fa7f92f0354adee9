"""Who may post a delivery report: the door's PROVIDER check for the SMS providers' callbacks.

A report comes to ``/v1/sms/reports/{provider}/{token}``; it is the provider's when
``{provider}`` names a configured provider and ``{token}`` is that provider's
``callback_token`` (compared in constant time; a provider without one accepts no report).
"""

from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from ..api.auth import key_matches


def provider_check(config: Callable[[], Any]) -> Callable[[web.Request], Any]:
    """The door's ``ProviderCheck`` over the current config's SMS providers."""

    async def check(request: web.Request) -> str | None:
        name = request.match_info.get("provider")
        token = request.match_info.get("token")
        if name is None or token is None:
            return None
        spec = next((p for p in config().model.sms.providers if p.name == name), None)
        presented = token.encode("utf-8", "surrogatepass")
        if not key_matches(presented, spec.callback_token if spec is not None else None):
            return None
        return name

    return check
