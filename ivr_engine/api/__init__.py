"""HTTP API (aiohttp): SDK call plans and devices, call context for agents, transfers,
administration, and the OpenAPI document that describes them all.

- ``POST /v1/apps/{app}/calls`` — the SDK asks VoIP or PSTN; PSTN answers carry the fallback
  number and a one-time token to dial after it. ``Authorization: Bearer <the app's api_key>``.
- ``POST /v1/devices`` — a user's app registers its push tokens. Bearer api key of that app.
- ``GET /v1/calls/{id}``, ``POST /v1/calls/{id}/transfer`` — call context and transfers for
  agents. Bearer ``engine.api.admin_token``.
- ``GET /v1/admin/apps``, ``GET /v1/admin/calls``, ``POST /v1/admin/reload``,
  ``POST /v1/admin/push-test`` — administration. Bearer ``engine.api.admin_token``.
- ``GET /v1/health``, ``GET /openapi.json`` (and ``ops.py``'s ``/healthz``, ``/readyz``,
  ``/metrics``) — public.

Each feature owns its routes (``apps/http.py``, ``wakeup/http.py``, ``calls/http.py``) and
their request/response models (``<feature>/schemas.py``), declared with ``routes.ApiRoutes``:
one decorator registers a route and records its contract (summary, credential, request model,
answers), from which ``openapi.py`` generates the document. ``app.py`` assembles them;
``admin.py`` holds the engine-level routes. This package holds what they share: errors as
RFC 9457 problem documents (``problems``), authentication that fails closed (``auth``), rate
limits (``guards``, ``ratelimit``), one bounded body parser that ends in the request model
(``input``), shared models (``schemas``) and the handlers' context. It imports no feature,
so features may import it.
"""
