"""Local stand-ins for the push providers, speaking their real wire protocols on 127.0.0.1.

* :class:`FakeFcm` — plain HTTP (aiohttp): Google's OAuth2 token endpoint for service accounts
  (``POST /token``, RFC 7523 JWT bearer grant, RS256 assertion verified) and FCM HTTP v1
  ``POST /v1/projects/{project}/messages:send`` (Bearer token, message shape checked).
* :class:`FakeApns` — HTTP/2 over TLS, ALPN ``h2`` only (hypercorn serving a tiny ASGI app):
  ``POST /3/device/<hex token>`` with the APNs headers checked and the provider JWT (ES256)
  verified, or a client certificate required and verified by TLS.

Both record what they accepted (with the monotonic arrival time), answer like the real
services for dead tokens, can delay their answers, and call a hook per accepted message
(``on_message`` / ``on_notification``; a plain function runs inline, a coroutine function
runs as a task the server owns — awaited, or cancelled after ``hook_grace`` seconds, by
:meth:`stop`; exceptions land in ``hook_errors``).  Start with ``await start()`` / stop with
``await stop()``, or use them as async context managers.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import secrets
import socket
import ssl
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jwt
from aiohttp import web

from .keys import ApnsAuthKey, Pki, ServiceAccount, make_service_account

log = logging.getLogger("tests.push_servers")

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_TTL = re.compile(r"^\d{1,10}(\.\d{1,9})?s$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


class _Hooks:
    """Runs the per-message hook; owns the tasks of async hooks."""

    def __init__(self, grace: float):
        self.grace = grace
        self.tasks: set[asyncio.Task] = set()
        self.errors: list[BaseException] = []

    def fire(self, hook: Callable[[Any], Any] | None, item: Any) -> None:
        if hook is None:
            return
        try:
            out = hook(item)
        except Exception as e:  # noqa: BLE001 - reported through hook_errors
            log.exception("hook failed")
            self.errors.append(e)
            return
        if inspect.isawaitable(out):
            task = asyncio.ensure_future(out)
            self.tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(task.exception())  # type: ignore[arg-type]

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for running hook tasks; cancel those still running after ``timeout``."""
        if not self.tasks:
            return
        tasks = list(self.tasks)
        _, pending = await asyncio.wait(tasks, timeout=self.grace if timeout is None else timeout)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending)


async def _interruptible_sleep(delay: float, stopping: asyncio.Event) -> None:
    if delay > 0:
        try:
            await asyncio.wait_for(stopping.wait(), delay)
        except TimeoutError:
            pass


# =========================================================================== FCM


@dataclass
class FcmMessage:
    project: str
    message: dict[str, Any]  # the request's "message" object, as received
    received_at: float  # time.monotonic()
    id: str

    @property
    def token(self) -> str:
        return self.message["token"]

    @property
    def data(self) -> dict[str, str]:
        return self.message.get("data", {})


@dataclass
class FcmRejection:
    status: int
    reason: str
    body: Any
    received_at: float


def _fcm_error(status: int, grpc: str, message: str, code: str | None = None) -> web.Response:
    err: dict[str, Any] = {"code": status, "message": message, "status": grpc}
    if code:
        err["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                           "errorCode": code}]
    return web.json_response({"error": err}, status=status)


class FakeFcm:
    """OAuth2 token endpoint + FCM HTTP v1 send endpoint on ``http://127.0.0.1:<port>``.

    Trust a service account with :meth:`add_account` (or create one with
    :meth:`make_service_account`, whose ``token_uri`` is this server's ``/token``).
    """

    def __init__(self, *, delay: float = 0.0, on_message: Callable[[FcmMessage], Any] | None
                 = None, hook_grace: float = 5.0, token_lifetime: int = 3600):
        self.delay = delay  # seconds before answering messages:send
        self.token_delay = 0.0  # seconds before answering /token
        self.on_message = on_message
        self.token_lifetime = token_lifetime
        self.unregistered: set[str] = set()  # → 404 UNREGISTERED
        self.invalid: set[str] = set()  # → 400 INVALID_ARGUMENT (bad registration token)
        self.messages: list[FcmMessage] = []
        self.rejected: list[FcmRejection] = []
        self.token_requests: list[dict[str, Any]] = []  # verified assertion claims
        self.accounts: dict[str, ServiceAccount] = {}  # client_email → account
        self.account: ServiceAccount | None = None  # the last one made by make_service_account
        self._access: dict[str, str] = {}  # access token → client_email
        self._hooks = _Hooks(hook_grace)
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ set-up

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def hook_errors(self) -> list[BaseException]:
        return self._hooks.errors

    def add_account(self, account: ServiceAccount) -> ServiceAccount:
        self.accounts[account.client_email] = account
        return account

    def make_service_account(self, directory: str | Path, *, project_id: str = "ivr-test"
                             ) -> ServiceAccount:
        """Write a service-account JSON pointing at this server and trust it."""
        self.account = self.add_account(make_service_account(directory, self.token_uri,
                                                             project_id=project_id))
        return self.account

    def revoke_access_tokens(self) -> None:
        """Every access token handed out so far now gets 401 (like an early revocation)."""
        self._access.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> Any:
        return _wait_len(self.messages, count, timeout)

    async def start(self) -> "FakeFcm":
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post(r"/v1/projects/{project}/messages:send", self._send)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self._stopping.set()
        await self._hooks.drain()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await asyncio.wait_for(runner.cleanup(), 10)

    async def __aenter__(self) -> "FakeFcm":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ OAuth2

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        await _interruptible_sleep(self.token_delay, self._stopping)

        def bad(error: str, description: str, status: int = 400) -> web.Response:
            log.info("fake fcm /token: %s (%s)", error, description)
            return web.json_response({"error": error, "error_description": description},
                                     status=status)

        if form.get("grant_type") != JWT_BEARER:
            return bad("unsupported_grant_type", "Invalid grant_type")
        assertion = form.get("assertion")
        if not isinstance(assertion, str) or not assertion:
            return bad("invalid_request", "Missing required parameter: assertion")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return bad("invalid_grant", "Invalid JWT")
        account = self.accounts.get(str(unverified.get("iss")))
        if account is None:
            return bad("invalid_client", "The OAuth client was not found.", 401)
        if header.get("alg") != "RS256" or header.get("kid") != account.private_key_id:
            return bad("invalid_grant", "Invalid JWT Signature.")
        try:
            claims = jwt.decode(assertion, account.public_key_pem, algorithms=["RS256"],
                                audience=self.token_uri, issuer=account.client_email,
                                options={"require": ["iss", "aud", "iat", "exp", "scope"]})
        except jwt.InvalidAudienceError:
            return bad("invalid_grant", "Invalid JWT: Failed audience check.")
        except jwt.ExpiredSignatureError:
            return bad("invalid_grant", "Invalid JWT: Token must be a short-lived token")
        except jwt.PyJWTError as e:
            return bad("invalid_grant", f"Invalid JWT: {type(e).__name__}")
        if claims["exp"] - claims["iat"] > 3600 or claims["iat"] > time.time() + 60:
            return bad("invalid_grant", "Invalid JWT: Token must be a short-lived token "
                       "(60 minutes) and in a reasonable timeframe.")
        if claims.get("sub", account.client_email) != account.client_email:
            return bad("invalid_grant", "Invalid JWT: sub")
        if FCM_SCOPE not in str(claims["scope"]).split():
            return bad("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        self.token_requests.append(claims)
        access = "ya29.fake-" + secrets.token_urlsafe(24)
        self._access[access] = account.client_email
        return web.json_response({"access_token": access, "expires_in": self.token_lifetime,
                                  "token_type": "Bearer"})

    # ------------------------------------------------------------------ messages:send

    async def _send(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        project = request.match_info["project"]

        def reject(resp: web.Response, reason: str, body: Any = None) -> web.Response:
            self.rejected.append(FcmRejection(resp.status, reason, body, arrived))
            log.info("fake fcm: %d %s", resp.status, reason)
            return resp

        auth = request.headers.get("Authorization", "")
        email = self._access.get(auth[7:]) if auth.startswith("Bearer ") else None
        if email is None:
            return reject(_fcm_error(401, "UNAUTHENTICATED",
                                     "Request had invalid authentication credentials."),
                          "UNAUTHENTICATED")
        if self.accounts[email].project_id != project:
            return reject(_fcm_error(403, "PERMISSION_DENIED",
                                     "Permission 'cloudmessaging.messages.create' denied"),
                          "PERMISSION_DENIED")
        try:
            body = await request.json()
        except ValueError:
            return reject(_fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
                          "bad json")
        problem = _check_fcm_message(body)
        if problem:
            return reject(_fcm_error(400, "INVALID_ARGUMENT", problem), problem, body)
        message = body["message"]
        token = message["token"]
        if token in self.unregistered:
            return reject(_fcm_error(404, "NOT_FOUND", "Requested entity was not found.",
                                     "UNREGISTERED"), "UNREGISTERED", body)
        if token in self.invalid:
            return reject(_fcm_error(400, "INVALID_ARGUMENT", "The registration token is not "
                                     "a valid FCM registration token", "INVALID_ARGUMENT"),
                          "INVALID_ARGUMENT", body)
        msg_id = f"0:{int(time.time() * 1000)}%{uuid.uuid4().hex[:16]}"
        received = FcmMessage(project, message, arrived, msg_id)
        self.messages.append(received)
        self._hooks.fire(self.on_message, received)
        await _interruptible_sleep(self.delay, self._stopping)
        return web.json_response({"name": f"projects/{project}/messages/{msg_id}"})


def _check_fcm_message(body: Any) -> str | None:
    """What FCM v1 would refuse in a data message to a token (None when fine)."""
    if not isinstance(body, dict) or set(body) - {"message", "validate_only"}:
        return "Invalid JSON payload received. Unknown name at top level."
    message = body.get("message")
    if not isinstance(message, dict):
        return "Invalid JSON payload received. 'message' must be an object."
    known = {"name", "data", "notification", "android", "webpush", "apns", "fcm_options",
             "token", "topic", "condition"}
    if set(message) - known:
        return f"Invalid JSON payload received. Unknown name {sorted(set(message) - known)[0]!r}"
    targets = [k for k in ("token", "topic", "condition") if k in message]
    if targets != ["token"] or not isinstance(message["token"], str) or not message["token"]:
        return "Exactly one of token, topic or condition must be given (a token here)."
    data = message.get("data", {})
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return "Invalid value at 'message.data': every value must be a string"
    android = message.get("android", {})
    if not isinstance(android, dict):
        return "Invalid value at 'message.android'"
    if "priority" in android and android["priority"] not in ("NORMAL", "HIGH"):
        return f"Invalid value at 'message.android.priority' ({android['priority']!r})"
    if "ttl" in android and (not isinstance(android["ttl"], str) or not _TTL.match(android["ttl"])):
        return f"Invalid value at 'message.android.ttl' ({android['ttl']!r})"
    return None


# =========================================================================== APNs


@dataclass
class ApnsNotification:
    token: str
    headers: dict[str, str]  # lower-case names (apns-topic, apns-push-type, ...)
    body: dict[str, Any]
    received_at: float  # time.monotonic()
    apns_id: str
    auth: str  # "token" (verified JWT) | "certificate" (verified TLS client certificate)
    jwt_claims: dict[str, Any] = field(default_factory=dict)

    @property
    def push_type(self) -> str | None:
        return self.headers.get("apns-push-type")

    @property
    def topic(self) -> str | None:
        return self.headers.get("apns-topic")


@dataclass
class ApnsRejection:
    status: int
    reason: str
    token: str
    headers: dict[str, str]
    received_at: float


_PUSH_TYPES = {"alert", "background", "voip", "complication", "fileprovider", "mdm",
               "liveactivity", "location", "pushtotalk"}


class FakeApns:
    """APNs provider API (``https://127.0.0.1:<port>``): HTTP/2 + TLS, ALPN h2 only.

    ``auth_key``: the ES256 key provider JWTs are verified with (token auth).
    ``require_client_cert``: TLS requires a client certificate signed by the test CA
    (certificate auth); requests then need no ``authorization`` header.
    ``bundle_id``: the app whose topics are accepted (``<bundle>``, ``<bundle>.voip``).
    """

    def __init__(self, pki: Pki, *, bundle_id: str, auth_key: ApnsAuthKey | None = None,
                 require_client_cert: bool = False, delay: float = 0.0,
                 on_notification: Callable[[ApnsNotification], Any] | None = None,
                 hook_grace: float = 5.0):
        self.pki = pki
        self.bundle_id = bundle_id
        self.auth_key = auth_key
        self.require_client_cert = require_client_cert
        self.delay = delay
        self.on_notification = on_notification
        self.unregistered: set[str] = set()  # → 410 Unregistered
        self.bad_tokens: set[str] = set()  # → 400 BadDeviceToken
        self.wrong_topic_tokens: set[str] = set()  # → 400 DeviceTokenNotForTopic
        self.notifications: list[ApnsNotification] = []
        self.rejected: list[ApnsRejection] = []
        self.http_versions: set[str] = set()
        self._hooks = _Hooks(hook_grace)
        self._stopping = asyncio.Event()
        self._shutdown = asyncio.Event()
        self._started = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def hook_errors(self) -> list[BaseException]:
        return self._hooks.errors

    def wait_for(self, count: int, timeout: float = 5.0) -> Any:
        return _wait_len(self.notifications, count, timeout)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> "FakeApns":
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        # Bind and listen here so the port is known (and connectable) before hypercorn runs;
        # hypercorn takes the socket over through an fd:// bind and closes it on shutdown.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        cfg = Config()
        cfg.bind = [f"fd://{sock.detach()}"]
        cfg.certfile = str(self.pki.server_cert_file)
        cfg.keyfile = str(self.pki.server_key_file)
        cfg.alpn_protocols = ["h2"]
        if self.require_client_cert:
            cfg.ca_certs = str(self.pki.ca_file)
            cfg.verify_mode = ssl.CERT_REQUIRED
        cfg.graceful_timeout = 1.0
        cfg.ssl_handshake_timeout = 5.0
        cfg.accesslog = None
        cfg.errorlog = logging.getLogger("tests.push_servers.hypercorn")
        self._task = asyncio.get_running_loop().create_task(
            serve(self._asgi, cfg, shutdown_trigger=self._shutdown.wait, mode="asgi"),
            name=f"fake-apns:{self.port}")
        # The socket already listens; wait for the ASGI lifespan start-up, then a few loop
        # turns, so a hypercorn start-up failure (bad certificate...) is raised here.
        started = asyncio.ensure_future(self._started.wait())
        await asyncio.wait([started, self._task], timeout=5, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        for _ in range(3):
            await asyncio.sleep(0)
        if self._task.done():
            task, self._task = self._task, None
            task.result()
            raise RuntimeError("fake apns: hypercorn stopped at start-up")
        return self

    async def stop(self) -> None:
        self._stopping.set()
        await self._hooks.drain()
        self._shutdown.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, 10)
            except TimeoutError:
                log.warning("fake apns: hypercorn did not stop in time")

    async def __aenter__(self) -> "FakeApns":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ ASGI app

    async def _asgi(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                    self._started.set()
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        arrived = time.monotonic()
        self.http_versions.add(scope.get("http_version", ""))
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            headers[k.decode("latin-1").lower()] = v.decode("latin-1")
        body = b""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        apns_id = headers.get("apns-id") or str(uuid.uuid4()).upper()
        token = scope["path"].rsplit("/", 1)[-1]

        async def answer(status: int, reason: str | None = None, **extra: Any) -> None:
            out = [(b"apns-id", apns_id.encode())]
            data = b""
            if reason is not None:
                data = json.dumps({"reason": reason, **extra}).encode()
                out.append((b"content-type", b"application/json"))
                self.rejected.append(ApnsRejection(status, reason, token, headers, arrived))
                log.info("fake apns: %d %s", status, reason)
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": data})

        outcome = self._check(scope, headers, body)
        if isinstance(outcome[0], int):  # (status, reason): refused
            await answer(*outcome)
            return
        auth, claims, payload = outcome
        if token in self.unregistered:
            await answer(410, "Unregistered", timestamp=int(time.time() * 1000))
            return
        if token in self.bad_tokens:
            await answer(400, "BadDeviceToken")
            return
        if token in self.wrong_topic_tokens:
            await answer(400, "DeviceTokenNotForTopic")
            return
        note = ApnsNotification(token, headers, payload, arrived, apns_id, auth, claims)
        self.notifications.append(note)
        self._hooks.fire(self.on_notification, note)
        await _interruptible_sleep(self.delay, self._stopping)
        await answer(200)

    def _check(self, scope: dict, headers: dict[str, str], body: bytes
               ) -> tuple[int, str] | tuple[str, dict, dict]:
        """(status, reason) to refuse, or (auth, jwt claims, payload) to accept."""
        if scope.get("http_version") != "2":
            return 400, "BadPath"  # APNs speaks HTTP/2 only
        if scope["method"] != "POST":
            return 405, "MethodNotAllowed"
        m = re.fullmatch(r"/3/device/([^/]*)", scope["path"])
        if not m:
            return 404, "BadPath"
        token = m.group(1)
        if not token:
            return 400, "MissingDeviceToken"
        if not _HEX.match(token) or len(token) % 2 or not 32 <= len(token) <= 200:
            return 400, "BadDeviceToken"
        # authentication
        claims: dict[str, Any] = {}
        bearer = headers.get("authorization")
        if bearer is not None:
            if self.auth_key is None:
                return 403, "InvalidProviderToken"
            scheme, _, tok = bearer.partition(" ")
            if scheme.lower() != "bearer" or not tok:
                return 403, "InvalidProviderToken"
            try:
                header = jwt.get_unverified_header(tok)
                claims = jwt.decode(tok, self.auth_key.public_key_pem, algorithms=["ES256"],
                                    options={"require": ["iss", "iat"]})
            except jwt.PyJWTError:
                return 403, "InvalidProviderToken"
            if header.get("alg") != "ES256" or header.get("kid") != self.auth_key.key_id:
                return 403, "InvalidProviderToken"
            if claims["iss"] != self.auth_key.team_id:
                return 403, "InvalidProviderToken"
            if not time.time() - 3600 <= claims["iat"] <= time.time() + 60:
                return 403, "ExpiredProviderToken"
            auth = "token"
        elif self.require_client_cert:
            auth = "certificate"  # the TLS handshake verified it against the test CA
        else:
            return 403, "MissingProviderToken"
        # headers
        topic = headers.get("apns-topic")
        if not topic:
            return 400, "MissingTopic"
        if topic not in (self.bundle_id, f"{self.bundle_id}.voip"):
            return 400, "TopicDisallowed"
        push_type = headers.get("apns-push-type")
        if push_type not in _PUSH_TYPES:
            return 400, "InvalidPushType"
        if (push_type == "voip") != topic.endswith(".voip"):
            return 400, "BadTopic"
        if "apns-priority" in headers and headers["apns-priority"] not in ("1", "5", "10"):
            return 400, "BadPriority"
        if "apns-expiration" in headers and not headers["apns-expiration"].isdigit():
            return 400, "BadExpirationDate"
        if "apns-id" in headers and not re.fullmatch(
                r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
                headers["apns-id"]):
            return 400, "BadMessageId"
        # payload
        if not body:
            return 400, "PayloadEmpty"
        if len(body) > (5120 if push_type == "voip" else 4096):
            return 413, "PayloadTooLarge"
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, "BadPayload"
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            return 400, "BadPayload"
        return auth, claims, payload


async def _wait_len(items: list, count: int, timeout: float) -> list:
    """Wait until ``items`` holds at least ``count`` entries; returns them."""
    deadline = time.monotonic() + timeout
    while len(items) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"got {len(items)} of {count} within {timeout} s")
        await asyncio.sleep(0.01)
    return items
