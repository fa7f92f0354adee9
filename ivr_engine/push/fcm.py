"""Firebase Cloud Messaging, HTTP v1 API — async (aiohttp + PyJWT), no Firebase SDK.

OAuth2 for a service account (RFC 7523 JWT bearer grant): an RS256 JWT signed with the
account's key is exchanged at its ``token_uri`` for an access token, cached until 60 s before
it expires and refreshed once when FCM answers 401.

A wake-up is a high-priority *data* message (no notification block: the app decides what to
show) whose TTL is the time the engine waits for the app: a late wake-up is useless.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .model import PushError, PushResult, WakePayload, result_builder, token_hint
from .keys import read_key_file

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_URL = "https://fcm.googleapis.com"
_REFRESH_MARGIN = 60.0  # seconds before expiry a cached access token is renewed


class _OAuthFailed(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Account:
    """The parts of a service-account JSON we use; the key is parsed once, never printed."""

    __slots__ = ("project_id", "client_email", "private_key_id", "token_uri", "key")

    def __init__(self, path: str):
        """Read and parse ``path`` (blocking: the sender calls it in a worker thread)."""
        raw = read_key_file(path, "FCM service account")
        try:
            doc = json.loads(raw)
        except ValueError:
            raise PushError(f"FCM service account {path}: not JSON") from None
        if not isinstance(doc, dict):
            raise PushError(f"FCM service account {path}: not a JSON object")
        missing = [k for k in ("project_id", "client_email", "private_key", "token_uri")
                   if not isinstance(doc.get(k), str) or not doc[k]]
        if missing:
            raise PushError(f"FCM service account {path}: missing {', '.join(missing)}")
        try:
            key = load_pem_private_key(doc["private_key"].encode(), password=None)
        except (ValueError, TypeError):
            raise PushError(f"FCM service account {path}: private_key is not an "
                            "unencrypted PEM key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise PushError(f"FCM service account {path}: private_key is not an RSA key")
        self.project_id: str = doc["project_id"]
        self.client_email: str = doc["client_email"]
        self.private_key_id: str | None = doc.get("private_key_id") or None
        self.token_uri: str = doc["token_uri"]
        self.key = key

    def __repr__(self) -> str:
        return f"<service account {self.client_email} project={self.project_id}>"


class FcmSender:
    """Sends wake-up and cancel data messages to Android devices through FCM HTTP v1.

    Use as ``async with FcmSender(...) as fcm`` or ``await open()`` / ``await close()``:
    :meth:`open` reads the service account in a worker thread (a bad file raises
    :class:`PushError` there) and creates the aiohttp session inside the running loop.  No
    method raises for what FCM or the OAuth server answers; every send is bounded by
    ``timeout`` (access-token fetch and the one 401 retry included).
    """

    def __init__(self, service_account_file: str, *, base_url: str = DEFAULT_URL,
                 timeout: float = 5.0):
        self.service_account_file = service_account_file
        self._loaded: _Account | None = None
        self.base_url = (base_url or DEFAULT_URL).rstrip("/")
        self.timeout = float(timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token_lock: asyncio.Lock | None = None
        self._access_token: str | None = None
        self._token_deadline = 0.0  # time.monotonic() after which it is renewed

    @property
    def files(self) -> tuple[str, ...]:
        """The files it reads: when one changes, the PushService builds a new sender."""
        return (self.service_account_file,)

    @property
    def _account(self) -> _Account:
        assert self._loaded is not None, "open() the sender first"
        return self._loaded

    @property
    def project_id(self) -> str:
        return self._account.project_id

    @property
    def send_url(self) -> str:
        return f"{self.base_url}/v1/projects/{self._account.project_id}/messages:send"

    def __repr__(self) -> str:
        project = self._loaded.project_id if self._loaded else "?"
        return f"<FcmSender project={project} url={self.base_url}>"

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> "FcmSender":
        if self._loaded is None:
            try:
                self._loaded = await asyncio.wait_for(
                    asyncio.to_thread(_Account, self.service_account_file), self.timeout)
            except TimeoutError:
                raise PushError(f"FCM service account {self.service_account_file}: reading "
                                f"it took over {self.timeout:g} s") from None
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._token_lock = asyncio.Lock()
        return self

    async def close(self) -> None:
        session, self._session = self._session, None
        self._access_token = None
        if session is not None and not session.closed:
            await session.close()

    async def __aenter__(self) -> "FcmSender":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ sends

    async def send_wake(self, token: str, payload: WakePayload, ttl_seconds: int) -> PushResult:
        ttl = max(0, int(ttl_seconds))
        return await self._send({
            "token": token,
            "data": payload.data(),
            "android": {"priority": "HIGH", "ttl": f"{ttl}s"},
        }, "wake")

    async def send_cancel(self, token: str, call_id: str) -> PushResult:
        return await self._send({
            "token": token,
            "data": {"type": "cancel_call", "call_id": call_id},
            "android": {"priority": "HIGH", "ttl": "30s"},
        }, "cancel")

    async def send_data(self, token: str, data: dict[str, str], ttl_seconds: int,
                        what: str = "notice") -> PushResult:
        """A high-priority data message (the app shows what it wants)."""
        return await self._send({
            "token": token,
            "data": data,
            "android": {"priority": "HIGH", "ttl": f"{max(0, int(ttl_seconds))}s"},
        }, what)

    async def _send(self, message: dict[str, Any], what: str) -> PushResult:
        result = result_builder("fcm", what, message["token"], log)
        hint = token_hint(message["token"])

        try:
            async with asyncio.timeout(self.timeout):
                await self.open()
                status, body = await self._post({"message": message})
        except TimeoutError:
            return result(False, None, "timeout")
        except _OAuthFailed as e:
            return result(False, e.status, f"oauth: {e.reason}")
        except (aiohttp.ClientError, OSError) as e:
            log.debug("fcm %s to token#%s: %s", what, hint, type(e).__name__)
            return result(False, None, "connection error")

        if status == 200:
            try:
                name = json.loads(body).get("name")
            except (ValueError, AttributeError):
                name = None
            return result(True, status, "", ident=name if isinstance(name, str) else None)
        reason, invalid = _error_reason(status, body)
        return result(False, status, reason, invalid)

    async def _post(self, body: dict[str, Any]) -> tuple[int, bytes]:
        assert self._session is not None
        stale: str | None = None
        for attempt in range(2):
            access = await self._token(stale)
            async with self._session.post(
                self.send_url, json=body, headers={"Authorization": f"Bearer {access}"},
            ) as resp:
                status, data = resp.status, await resp.read()
            if status == 401 and attempt == 0:
                stale = access  # revoked or expired early: fetch a new one, retry once
                continue
            return status, data
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ OAuth2

    async def _token(self, stale: str | None = None) -> str:
        """The cached access token, or a new one (when missing, near expiry or ``stale``)."""
        assert self._token_lock is not None
        async with self._token_lock:
            if (self._access_token is not None and self._access_token != stale
                    and time.monotonic() < self._token_deadline):
                return self._access_token
            self._access_token = None
            token, expires_in = await self._fetch_token()
            self._access_token = token
            self._token_deadline = time.monotonic() + max(0.0, expires_in - _REFRESH_MARGIN)
            return token

    def _assertion(self) -> str:
        acc = self._account
        now = int(time.time())
        claims = {"iss": acc.client_email, "sub": acc.client_email, "aud": acc.token_uri,
                  "scope": SCOPE, "iat": now, "exp": now + 3600}
        headers = {"kid": acc.private_key_id} if acc.private_key_id else None
        return jwt.encode(claims, acc.key, algorithm="RS256", headers=headers)

    async def _fetch_token(self) -> tuple[str, float]:
        assert self._session is not None
        form = {"grant_type": JWT_BEARER, "assertion": self._assertion()}
        async with self._session.post(self._account.token_uri, data=form) as resp:
            status, data = resp.status, await resp.read()
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise _OAuthFailed(status, f"HTTP {status}")
        if status != 200 or not isinstance(doc.get("access_token"), str):
            raise _OAuthFailed(status, str(doc.get("error") or f"HTTP {status}"))
        try:
            expires_in = float(doc.get("expires_in", 3600))
        except (TypeError, ValueError):
            expires_in = 3600.0
        log.debug("fcm: new access token for %s, valid %.0f s", self._account.client_email,
                  expires_in)
        return doc["access_token"], expires_in


def _error_reason(status: int, body: bytes) -> tuple[str, bool]:
    """(reason, token_invalid) from an FCM v1 error answer."""
    try:
        err = json.loads(body)["error"]
        if not isinstance(err, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}", False
    codes = [d["errorCode"] for d in err.get("details") or ()
             if isinstance(d, dict) and isinstance(d.get("errorCode"), str)]
    reason = codes[0] if codes else str(err.get("status") or f"HTTP {status}")
    message = str(err.get("message") or "").lower()
    invalid = "UNREGISTERED" in codes or (
        (reason == "INVALID_ARGUMENT" or err.get("status") == "INVALID_ARGUMENT")
        and "registration token" in message)
    return reason, invalid
