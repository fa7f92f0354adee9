"""HTTP API (aiohttp): SDK call plans and devices, call context for agents, transfers.

- ``POST /v1/apps/{app}/calls`` — the SDK asks VoIP or PSTN; PSTN answers carry the fallback
  number and a one-time token to dial after it. ``Authorization: Bearer <the app's api_key>``.
- ``POST /v1/devices`` — a user's app registers its push tokens ``{"app", "user",
  "platform": "ios"|"android", "push_token", "voip_token", "app_version", "os_version",
  "model"}``. Bearer api key of that app.
- ``GET /v1/calls/{id}`` — what the engine knows of a call (app, path, caller, language,
  custom data) for screen pops. Bearer ``engine.api.admin_token``.
- ``POST /v1/calls/{id}/transfer`` — ``{"to": "queue:<name>" | "endpoint:<name>"}``. Bearer
  ``engine.api.admin_token``.
- ``GET /v1/health`` — public.

Each feature owns its routes (``apps/http.py``, ``wakeup/http.py``, ``calls/http.py``);
``app.py`` assembles them. This package holds what they share: errors as RFC 9457 problem
documents (``problems``), authentication that fails closed (``auth``), rate limits
(``guards``, ``ratelimit``), one bounded body parser (``input``) and the handlers' context.
It imports no feature, so features may import it.
"""
