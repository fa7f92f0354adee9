"""Apple Push Notification service over HTTP/2, through aioapns 4.0.

* Wake-up: a PushKit VoIP push (``apns-push-type: voip``, topic ``<bundle id>.voip``,
  priority 10, expiring when the engine stops waiting).
* Cancel: an ordinary ``alert`` push on topic ``<bundle id>`` — never a VoIP push: since iOS
  13 an app that receives a VoIP push and does not report a call to CallKit is killed.

Authentication with a token key (``.p8``; aioapns signs the ES256 provider JWT) or a provider
certificate (one PEM holding the certificate and its key).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from aioapns import APNs, NotificationRequest, PushType
from aioapns.connection import (
    APNsBaseConnectionPool,
    APNsCertConnectionPool,
    APNsDevelopmentClientProtocol,
    APNsProductionClientProtocol,
    APNsTLSClientProtocol,
)
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .model import PushError, PushResult, WakePayload, result_builder, token_hint
from .keys import read_key_file

log = logging.getLogger(__name__)

# hpack (under h2, under aioapns) logs header blocks at DEBUG: device tokens (in :path) and the
# provider JWT.  Secrets are never logged, so keep it quiet unless someone set its level.
if logging.getLogger("hpack").level == logging.NOTSET:
    logging.getLogger("hpack").setLevel(logging.INFO)

#: Answers meaning "this token will never work again": forget it.
DEAD_TOKEN_REASONS = frozenset({"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"})


class _TolerantProtocol:
    """Mixed in front of aioapns's protocol class; closes two gaps of aioapns 4.0:

    * a request given up on (our ``asyncio.timeout`` cancelled its future) is still in
      ``requests``: a late answer — or the connection closing — would call ``set_result`` /
      ``set_exception`` on a cancelled future and kill the connection with InvalidStateError.
      Finished futures are dropped before aioapns looks at them.
    * an empty DATA frame (legal HTTP/2, e.g. a server ending a stream with an empty frame)
      would reach ``json.loads(b"")``; empty data carries no reason, so it is skipped.
    """

    requests: dict[str, asyncio.Future]

    def _drop_abandoned(self) -> None:
        for nid in [n for n, fut in self.requests.items() if fut.done()]:
            del self.requests[nid]

    def data_received(self, data: bytes) -> None:
        self._drop_abandoned()
        super().data_received(data)  # type: ignore[misc]

    def on_data_received(self, raw_data: bytes, stream_id: int) -> None:
        if raw_data.strip():
            super().on_data_received(raw_data, stream_id)  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self._drop_abandoned()
        super().connection_lost(exc)  # type: ignore[misc]


def _protocol_class(sandbox: bool, url: str | None) -> type[APNsTLSClientProtocol]:
    """The connection-pool protocol class: Apple's production or development host, or ``url``.

    aioapns has no base-URL option: the host and port it connects to (and sends as ``host``)
    are the class attributes ``APNS_SERVER`` / ``APNS_PORT`` of the pool's ``protocol_class``
    (``APNsProductionClientProtocol`` or ``APNsDevelopmentClientProtocol``, picked by
    ``use_sandbox``).  To point it elsewhere we subclass the right one with the URL's host and
    port and set the subclass on ``APNs.pool.protocol_class``; TLS is then verified against
    the CA bundle the caller gives (see ``_ssl_context``).
    """
    base = APNsDevelopmentClientProtocol if sandbox else APNsProductionClientProtocol
    attrs: dict[str, Any] = {}
    if url:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise PushError(f"APNs url {url!r}: expected https://host[:port]")
        try:
            port = parts.port or 443
        except ValueError:
            raise PushError(f"APNs url {url!r}: bad port") from None
        attrs = {"APNS_SERVER": parts.hostname, "APNS_PORT": port}
    return type(f"IvrEngine{base.__name__}", (_TolerantProtocol, base), attrs)


def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Server verification (system CAs, or ``ca_file``) and ALPN h2 (in a worker thread: it
    reads the CA files)."""
    if ca_file:
        read_key_file(ca_file, "APNs ca_file")  # missing, unreadable or oversized: say so
    try:
        ctx = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as e:
        raise PushError(f"APNs ca_file {ca_file}: {e}") from None
    ctx.set_alpn_protocols(["h2"])
    return ctx


def _token_key(key_file: str) -> str:
    """The ``.p8`` key's PEM, checked to be an EC (ES256) private key."""
    pem = read_key_file(key_file, "APNs key_file")
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise PushError(f"APNs key_file {key_file}: not a PEM (.p8) private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PushError(f"APNs key_file {key_file}: not an EC (ES256) key")
    return pem.decode("ascii", "replace")


class _LoadedCertPool(APNsCertConnectionPool):
    """aioapns's certificate pool, its certificate chain already loaded into ``ssl_context``
    in a worker thread (aioapns's own constructor reads the file on the event loop)."""

    def __init__(self, ssl_context: ssl.SSLContext, **options: Any):
        APNsBaseConnectionPool.__init__(self, **options)
        self.cert_file = None
        self.ssl_context = ssl_context


class ApnsSender:
    """Sends VoIP wake-ups and alert cancels to iOS devices.

    The credentials' files are read and checked in a worker thread by :meth:`open` (a bad
    file raises :class:`PushError` there), which also creates the aioapns client inside the
    running loop; :meth:`close` closes it.  No send raises: answers, connection failures and
    timeouts come back as a :class:`PushResult`, within ``timeout`` seconds.
    """

    def __init__(self, *, bundle_id: str, key_file: str | None = None,
                 key_id: str | None = None, team_id: str | None = None,
                 certificate_file: str | None = None, sandbox: bool = False,
                 url: str | None = None, ca_file: str | None = None, timeout: float = 5.0):
        if not bundle_id:
            raise PushError("APNs needs the app's bundle id (ios_id)")
        self.bundle_id = bundle_id
        self.sandbox = bool(sandbox)
        self.url = url
        self.timeout = float(timeout)
        self._ca_file = ca_file or None
        self._key_file = key_file or None
        self._key_id = key_id
        self._team_id = team_id
        self._cert_file = certificate_file or None
        if key_file:
            if certificate_file:
                raise PushError("APNs: give key_file or certificate_file, not both")
            if not key_id or not team_id:
                raise PushError("APNs token auth needs key_id and team_id with key_file")
        elif not certificate_file:
            raise PushError("APNs needs key_file (+ key_id, team_id) or certificate_file")
        self._protocol = _protocol_class(self.sandbox, url)  # validates url now
        self._client: APNs | None = None

    @property
    def files(self) -> tuple[str, ...]:
        """The files it reads: when one changes, the PushService builds a new sender."""
        return tuple(f for f in (self._key_file, self._cert_file, self._ca_file) if f)

    def __repr__(self) -> str:
        auth = "token" if self._key_file else "certificate"
        host = self.url or ("sandbox" if self.sandbox else "production")
        return f"<ApnsSender {self.bundle_id} auth={auth} {host}>"

    # ------------------------------------------------------------------ lifecycle

    def _load(self) -> tuple[str | None, ssl.SSLContext]:
        """Read and check the files (in a worker thread): the token key's PEM, and the TLS
        context with the CAs and, for certificate auth, the provider certificate."""
        ctx = _ssl_context(self._ca_file)
        if self._key_file:
            return _token_key(self._key_file), ctx
        assert self._cert_file
        read_key_file(self._cert_file, "APNs certificate_file")
        try:
            ctx.load_cert_chain(self._cert_file)
        except (OSError, ssl.SSLError) as e:
            raise PushError(f"APNs certificate_file {self._cert_file}: {e}") from None
        return None, ctx

    async def open(self) -> "ApnsSender":
        if self._client is not None:
            return self
        try:
            key, ctx = await asyncio.wait_for(asyncio.to_thread(self._load), self.timeout)
        except TimeoutError:
            raise PushError(f"APNs credentials for {self.bundle_id}: reading "
                            f"{', '.join(self.files)} took over {self.timeout:g} s") from None

        async def quiet(request: NotificationRequest, result: Any) -> None:
            """Replaces aioapns's own error log (we log without the token)."""

        options = {"topic": self.bundle_id, "use_sandbox": self.sandbox,
                   "max_connection_attempts": 2}
        if key is not None:
            client = APNs(key=key, key_id=self._key_id, team_id=self._team_id,
                          ssl_context=ctx, err_func=quiet, **options)
        else:  # APNs(client_cert=) would read the certificate again, on the loop
            client = object.__new__(APNs)
            client.err_func = quiet
            client.pool = _LoadedCertPool(ctx, **options)
        client.pool.protocol_class = self._protocol
        self._client = client
        return self

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        pool = client.pool
        pool.close()
        # Let the transports finish closing (connection_lost removes them from the pool).
        deadline = time.monotonic() + 2.0
        while pool.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> "ApnsSender":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ sends

    async def send_wake(self, voip_token: str, payload: WakePayload,
                        ttl_seconds: int) -> PushResult:
        return await self._send(NotificationRequest(
            device_token=voip_token,
            message={"aps": {}, **payload.data()},
            notification_id=str(uuid.uuid4()).upper(),
            time_to_live=max(0, int(ttl_seconds)),
            priority=10,
            push_type=PushType.VOIP,
            apns_topic=f"{self.bundle_id}.voip",
        ), "wake")

    async def send_cancel(self, token: str, call_id: str, caller_number: str = "") -> PushResult:
        return await self._send(NotificationRequest(
            device_token=token,
            message={"aps": {"alert": {"title": "Missed call", "body": caller_number},
                             "thread-id": call_id},
                     "type": "cancel_call", "call_id": call_id},
            notification_id=str(uuid.uuid4()).upper(),
            priority=10,
            push_type=PushType.ALERT,
            apns_topic=self.bundle_id,
        ), "cancel")

    async def send_alert(self, token: str, title: str, body: str, data: dict[str, str],
                         what: str = "notice") -> PushResult:
        """A regular alert push (never VoIP): what the user should see, with ``data``."""
        return await self._send(NotificationRequest(
            device_token=token,
            message={"aps": {"alert": {"title": title, "body": body}}, **data},
            notification_id=str(uuid.uuid4()).upper(),
            priority=10,
            push_type=PushType.ALERT,
            apns_topic=self.bundle_id,
        ), what)

    async def _send(self, request: NotificationRequest, what: str) -> PushResult:
        result = result_builder("apns", what, request.device_token, log)
        hint = token_hint(request.device_token)

        try:
            async with asyncio.timeout(self.timeout):
                await self.open()
                assert self._client is not None
                answer = await self._client.send_notification(request)
        except TimeoutError:
            return result(False, None, "timeout")
        except PushError:
            raise
        except Exception as e:  # aioapns: ConnectionError, MaxAttemptsExceeded, ssl, h2 ...
            log.debug("apns %s to token#%s: %s", what, hint, type(e).__name__)
            return result(False, None, "connection error")

        try:
            status: int | None = int(answer.status)
        except (TypeError, ValueError):
            status = None
        if status == 200:
            return result(True, 200, "", ident=answer.notification_id)
        reason = answer.description or (f"HTTP {status}" if status else "no status")
        invalid = status == 410 or (status == 400 and reason in DEAD_TOKEN_REASONS)
        return result(False, status, reason, invalid)
