"""PushService: wake a user's device before a call rings it, cancel when the call is gone.

One sender per (app, provider), built from the app's ``push`` configuration the first time it
is needed (inside the running loop) and kept; when a configuration reload changes an app's
credentials, or one of its files changes (a rotated key: looked at, off the loop, at most once
a second), its sender is rebuilt — a new file that does not load keeps the old sender, with a
warning.  The files are read in a worker thread (``keys.py``).  Dead tokens are removed from
the store.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace
from typing import Any, Callable, Protocol

from .. import metrics
from .model import PushError, PushResult, WakePayload, token_hint
from .apns import ApnsSender
from .fcm import FcmSender
from .keys import FileStamps

log = logging.getLogger(__name__)

TEST_TTL_SECONDS = 30


class DeviceLike(Protocol):
    app: str
    platform: str  # ios | android
    push_token: str | None
    voip_token: str | None


class _Sender(Protocol):
    files: tuple[str, ...]

    async def open(self) -> Any: ...
    async def close(self) -> None: ...


def _no_token(provider: str, reason: str) -> PushResult:
    return PushResult(False, provider, None, reason, False, 0.0)


class PushService:
    """``config_getter()`` returns the current configuration (a :class:`Config` or its
    ``ConfigModel``); ``store`` has ``devices.forget_token(token)``.

    :meth:`wake`, :meth:`cancel` and :meth:`test` never raise for provider answers; they raise
    :class:`PushError` when the app is unknown or its push credentials are missing/unusable.
    """

    def __init__(self, config_getter: Callable[[], Any], store: Any, *, timeout: float = 5.0):
        self._config_getter = config_getter
        self._store = store
        self.timeout = timeout
        # (app, provider) → (config signature, file stamps, sender)
        self._senders: dict[tuple[str, str], tuple[object, tuple, _Sender]] = {}
        self._refused: dict[tuple[str, str], tuple] = {}  # file stamps that did not load
        self._stamps = FileStamps()
        self._lock: asyncio.Lock | None = None
        self._closed = False

    # ------------------------------------------------------------------ senders

    def _app(self, name: str) -> Any:
        cfg = self._config_getter()
        model = getattr(cfg, "model", cfg)
        app = model.apps.get(name)
        if app is None:
            raise PushError(f"unknown app {name!r}")
        return app

    def _signature(self, name: str, provider: str) -> object:
        """What a sender is built from: when it changes, the sender is rebuilt."""
        app = self._app(name)
        return (app.push.apns, app.ios_id) if provider == "apns" else app.push.fcm

    def _build(self, name: str, provider: str) -> _Sender:
        """An unopened sender for the app's current configuration."""
        app = self._app(name)
        if provider == "apns":
            creds = app.push.apns
            if creds is None:
                raise PushError(f"app {name!r} has no push.apns credentials")
            if not app.ios_id:
                raise PushError(f"app {name!r} has push.apns but no ios_id (the APNs topic)")
            return ApnsSender(
                bundle_id=app.ios_id, key_file=creds.key_file, key_id=creds.key_id,
                team_id=creds.team_id, certificate_file=creds.certificate_file,
                sandbox=creds.sandbox, url=creds.url, ca_file=creds.ca_file,
                timeout=self.timeout)
        creds = app.push.fcm
        if creds is None or not creds.service_account_file:
            raise PushError(f"app {name!r} has no push.fcm service_account_file")
        kwargs = {"base_url": creds.url} if creds.url else {}
        return FcmSender(creds.service_account_file, timeout=self.timeout, **kwargs)

    async def _sender(self, name: str, provider: str) -> Any:
        if self._closed:
            raise PushError("push service is closed")
        if self._lock is None:
            self._lock = asyncio.Lock()
        key = (name, provider)
        async with self._lock:
            held = self._senders.get(key)
            sig = self._signature(name, provider)
            if held is not None and held[0] == sig:
                files = await self._stamps.of(held[2].files)
                if files in (held[1], self._refused.get(key)):
                    return held[2]
                log.info("push: a %s credentials file of app %s changed, reloading",
                         provider, name)
            elif held is not None:  # configuration reloaded with other credentials
                log.info("push: %s credentials of app %s changed, rebuilding", provider, name)
            sender = self._build(name, provider)
            files = await self._stamps.of(sender.files)
            try:
                await sender.open()
            except PushError as e:
                if held is None or held[0] != sig:
                    raise
                log.warning("push: %s; app %s keeps the %s credentials it loaded before",
                            e, name, provider)
                self._refused[key] = files
                return held[2]
            self._refused.pop(key, None)
            if held is not None:
                del self._senders[key]
                await held[2].close()
            self._senders[key] = (sig, files, sender)
            return sender

    async def close(self) -> None:
        self._closed = True
        senders, self._senders = list(self._senders.values()), {}
        for _, _, sender in senders:
            try:
                await sender.close()
            except Exception:  # noqa: BLE001 - close every one
                log.exception("push: closing %r failed", sender)

    async def __aenter__(self) -> "PushService":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ pushes

    async def wake(self, device: DeviceLike, payload: WakePayload, ttl_seconds: int,
                   *, app: str | None = None) -> PushResult:
        """A wake-up push: VoIP on iOS, a high-priority data message on Android."""
        name = app or device.app
        if device.platform == "ios":
            token = device.voip_token or device.push_token
            if not token:
                return _no_token("apns", "no token")
            sender = await self._sender(name, "apns")
            result = await sender.send_wake(token, payload, ttl_seconds)
            if (result.token_invalid and not device.voip_token
                    and result.reason == "DeviceTokenNotForTopic"):
                # A VoIP push to the regular (alert) token: the token is fine for alerts, it
                # just is not a PushKit token — do not wipe it.
                result = replace(result, token_invalid=False)
        elif device.platform == "android":
            token = device.push_token
            if not token:
                return _no_token("fcm", "no token")
            sender = await self._sender(name, "fcm")
            result = await sender.send_wake(token, payload, ttl_seconds)
        else:
            raise PushError(f"unknown platform {device.platform!r}")
        await self._after(result, token, name, "wake")
        return result

    async def cancel(self, device: DeviceLike, call_id: str, caller_number: str = "",
                     *, app: str | None = None) -> PushResult:
        """Tell the app the call is gone: an alert push on iOS (never VoIP), data on Android."""
        name = app or device.app
        if device.platform == "ios":
            token = device.push_token
            if not token:
                return _no_token("apns", "no alert token")
            sender = await self._sender(name, "apns")
            result = await sender.send_cancel(token, call_id, caller_number)
        elif device.platform == "android":
            token = device.push_token
            if not token:
                return _no_token("fcm", "no token")
            sender = await self._sender(name, "fcm")
            result = await sender.send_cancel(token, call_id)
        else:
            raise PushError(f"unknown platform {device.platform!r}")
        await self._after(result, token, name, "cancel")
        return result

    async def notify(self, device: DeviceLike, title: str, body: str, data: dict[str, str],
                     *, app: str | None = None, kind: str = "notice",
                     ttl_seconds: int = 86_400) -> PushResult:
        """Tell the app something (a release notice, a session ended): an alert push on iOS
        (never VoIP), a data message on Android; ``data`` values are strings."""
        name = app or device.app
        token = device.push_token
        if device.platform == "ios":
            if not token:
                return _no_token("apns", "no alert token")
            sender = await self._sender(name, "apns")
            result = await sender.send_alert(token, title, body, data, kind)
        elif device.platform == "android":
            if not token:
                return _no_token("fcm", "no token")
            sender = await self._sender(name, "fcm")
            result = await sender.send_data(token, {**data, "title": title, "body": body},
                                            ttl_seconds, kind)
        else:
            raise PushError(f"unknown platform {device.platform!r}")
        await self._after(result, token, name, kind)
        return result

    async def test(self, app: str, device: DeviceLike) -> PushResult:
        """A wake-up push with a test payload (``ivr-engine push test``)."""
        payload = WakePayload.create(f"test-{uuid.uuid4()}", "", "ivr-engine push test",
                                     TEST_TTL_SECONDS)
        return await self.wake(device, payload, TEST_TTL_SECONDS, app=app)

    async def _after(self, result: PushResult, token: str, app: str, kind: str) -> None:
        outcome = "ok" if result.ok else "token-invalid" if result.token_invalid else "error"
        metrics.PUSH_SENDS.labels(result.provider, kind, outcome).inc()
        if not result.token_invalid:
            return
        try:
            n = await self._store.devices.forget_token(token)
        except Exception as e:  # noqa: BLE001 - a store hiccup must not break the call flow
            log.warning("push: could not forget dead %s token#%s of app %s: %s",
                        result.provider, token_hint(token), app, type(e).__name__)
            return
        log.info("push: %s says token#%s of app %s is dead (%s); forgot it (%d row(s))",
                 result.provider, token_hint(token), app, result.reason, n)
