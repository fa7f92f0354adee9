"""What the engine counts, for ``GET /metrics`` (Prometheus text format, prometheus-client).

One registry per process (:data:`REGISTRY`), so the exposition holds the engine's metrics
only. Features record into these objects where the thing happens; labels are closed sets
(never a caller number, a channel id or a free text) so the series count stays bounded.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

CALLS_IN_PROGRESS = Gauge(
    "ivr_calls_in_progress", "Calls the engine drives now (in Stasis)", registry=REGISTRY)

HELD = Gauge(
    "ivr_held", "What the engine holds for calls now, by kind: sessions (calls driven), "
    "channels (routed by the ARI dispatchers), registration_waits (calls waiting for an app "
    "to register), live_records (calls not ended in the call registry); all 0 when idle",
    ["kind"], registry=REGISTRY)

CALLS = Counter(
    "ivr_calls_total", "Calls that left the engine, by how they entered and how they left",
    ["entry", "outcome"], registry=REGISTRY)

DTMF_TO_PROMPT = Histogram(
    "ivr_dtmf_to_prompt_seconds",
    "From a key reaching the engine to Asterisk accepting the next prompt's play request",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0), registry=REGISTRY)

WAKEUP_WAIT = Histogram(
    "ivr_wakeup_wait_seconds", "Ringing a user (push-then-wait) until it ended, by outcome",
    ["outcome"], buckets=(0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 120), registry=REGISTRY)

PUSH_SENDS = Counter(
    "ivr_push_sends_total", "Push notifications sent, by provider, kind and result",
    ["provider", "kind", "result"], registry=REGISTRY)

RECONNECTS = Counter(
    "ivr_reconnects_total", "Connections to Asterisk re-established after a loss",
    ["connection"], registry=REGISTRY)

NODE_REFUSED = Counter(
    "ivr_node_refused_total", "Connections to an Asterisk node refused because it is not the "
    "node configured (no-system-name, wrong-system-name)", ["node", "reason"],
    registry=REGISTRY)

WEBHOOK_DELIVERIES = Counter(
    "ivr_webhook_deliveries_total", "Context webhook deliveries, by result", ["result"],
    registry=REGISTRY)

TOKEN_GUESSING_REFUSED = Counter(
    "ivr_token_guessing_refused_total",
    "Calls on an app's fallback number treated as outside the app after too many wrong "
    "tokens", ["app"], registry=REGISTRY)
TOKEN_TRIES = Counter(
    "ivr_token_tries_total",
    "What calls presented (kind: token, long, code) and what came of it (matched, wrong: "
    "looked up in vain; refused: not looked up, a limit or a hardened app)",
    ["app", "kind", "outcome"], registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "ivr_http_requests_total", "HTTP API requests, by route, method and status",
    ["route", "method", "status"], registry=REGISTRY)

TASK_FAILURES = Counter(
    "ivr_task_failures", "Background tasks (SMS lanes, sweepers, monitors, webhook, call "
    "records, config reloads) that failed and were restarted by the supervisor", ["task"],
    registry=REGISTRY)

CALLER_WAIT_FALLBACKS = Counter(
    "ivr_caller_wait_fallbacks",
    "Callers sent to the fallback because a wait on the database ran past "
    "engine.database.call_deadline_seconds or failed, by wait and reason",
    ["wait", "reason"], registry=REGISTRY)

HTTP_CONNECTIONS = Gauge(
    "ivr_http_connections_open", "HTTP connections open now, by listener (api, admin)",
    ["listener"], registry=REGISTRY)

HTTP_CONNECTIONS_REFUSED = Counter(
    "ivr_http_connections_refused_total", "HTTP connections closed at once with a 503, by "
    "listener and reason (budget: the listener's limit; per_address)",
    ["listener", "reason"], registry=REGISTRY)

EVENT_STREAMS = Gauge(
    "ivr_event_streams_open", "Queue event streams (server-sent events) open now",
    registry=REGISTRY)

EVENT_STREAMS_REFUSED = Counter(
    "ivr_event_streams_refused_total", "Queue event streams refused with a 429, by the cap "
    "they met (per_client, per_user, per_address, total)", ["cap"], registry=REGISTRY)

SMS_REPORT_SIGNATURE_FAILURES = Counter(
    "ivr_sms_report_signature_failures_total", "SMS delivery reports refused (403) because "
    "the provider's signature is missing, wrong or stale, by provider", ["provider"],
    registry=REGISTRY)

CALLBACK_ATTEMPTS = Counter(
    "ivr_callback_attempts_total", "Callbacks the engine placed, by outcome (answered, busy, "
    "no-answer, unreachable, cancelled, no-agent, invalid-number, lost)", ["outcome"],
    registry=REGISTRY)
CALLBACKS_PLACED = Gauge(
    "ivr_callbacks_placed", "Callbacks this engine has placed in Asterisk now (waiting for "
    "an agent or dialling the customer)", registry=REGISTRY)
