"""Sessions: SDK logins, one open session per user and app, the session token as an SDK
credential, logout, idle expiry and the end of sessions below a mandatory release.

A session token is ``ivs_`` + 32 random bytes (URL-safe base64); the store keeps only its
SHA-256. A login ends the user's open session of the app (reason ``replaced``) and tells
that device by push through the app's own credentials: an APNs *alert* push (never VoIP) or
an FCM data message, to the push token the device gave when it logged in. With the app's
``confirm_takeover`` on, a login that would end a session of another device first answers
409 naming it (:class:`HandoverRequired`), unless it says ``force: true``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from ..api.problems import PROBLEM, Problem
from ..push import PushError, token_hint
from .assertions import AssertionRefused, Assertions
from .offline import new_secret
from .models import AppRelease, AppSession
from ..api.auth import SESSION_TOKEN_PREFIX, ProvenSession
from ..api.problems import UpdateRequired, session_ended
from .rules import (
    LOGOUT,
    MANDATORY,
    MANDATORY_UPDATE,
    PUSH_PLATFORMS,
    ReleaseFacts,
    login_block,
    notice_result,
    session_end,
)
from .repo import HandoverNeeded
from .schemas import HandoverProblem, HandoverSession, LoginRequest
from .versions import VersionError, parse_version

log = logging.getLogger("ivr_engine.lifecycle")

TOKEN_PREFIX = SESSION_TOKEN_PREFIX.decode()  # the door tells session tokens by it
_TOUCH_EVERY = dt.timedelta(seconds=60)


def new_session_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: bytes | str) -> str:
    raw = token.encode("utf-8", "surrogatepass") if isinstance(token, str) else token
    return hashlib.sha256(raw).hexdigest()


def release_facts(rows: list[AppRelease]) -> list[ReleaseFacts]:
    out = []
    for r in rows:
        try:
            version = parse_version(r.version)
        except VersionError:  # every stored version was parsed before it was stored
            continue
        out.append(ReleaseFacts(r.id, r.platform, version, r.kind, r.store_url,
                                r.published_at, r.grace_seconds))
    return out


@dataclass(frozen=True)
class PushTarget:
    """A session's device as the push service reads it (alert / data pushes only)."""

    app: str
    platform: str
    push_token: str | None
    voip_token: None = None


class HandoverRequired(Problem):
    """409: the login would end the user's open session on another device; it names that
    session's platform and device (the app asks its user, then repeats with ``force``)."""

    def __init__(self, session: AppSession):
        super().__init__(409, "Session open on another device",
                         f"this user is signed in on another device ({session.platform}, "
                         f"{session.device_model or session.os}): log in with force: true "
                         "to end that session", field="force")
        self.session = session

    def response(self, request: web.Request) -> web.Response:
        s = self.session
        doc = HandoverProblem(
            title=self.title, status=self.status, detail=self.detail, instance=request.path,
            field=self.field, reason="session_takeover", session=HandoverSession(
                platform=s.platform, app_type=s.app_type, os=s.os, os_version=s.os_version,
                device_model=s.device_model, device_id=s.device_id, since=s.started_at))
        return web.Response(status=409, content_type=PROBLEM,
                            text=json.dumps(doc.model_dump(mode="json", exclude_none=True)))


def _refusal(release: ReleaseFacts, platform: str, version: str) -> UpdateRequired:
    return UpdateRequired(platform=platform, version=version,
                          minimum_version=str(release.version), store_url=release.store_url)


class Sessions:
    def __init__(self, config: Callable[[], Any], store: Any, push: Any,
                 clock: Callable[[], dt.datetime]):
        self._config, self._store, self._push, self._clock = config, store, push, clock
        self.assertions = Assertions(config, store.lifecycle, clock)

    @property
    def repo(self) -> Any:
        return self._store.lifecycle

    def now(self) -> dt.datetime:
        return self._clock()

    def idle_seconds(self) -> float | None:
        return self._config().model.lifecycle.idle_expiry_seconds

    async def facts(self, app: str) -> list[ReleaseFacts]:
        return release_facts(await self.repo.releases(app))

    # ------------------------------------------------------------------ login / logout

    async def login(self, app: str, req: LoginRequest) -> tuple[str, AppSession, list]:
        """(token, the new session, [(ended session, how its device was told)]) for the user
        the request's assertion proves; raises AssertionRefused (401) for an assertion that
        does not, UpdateRequired when the version is below a mandatory release of the app."""
        asserted = await self.assertions.check(app, req.assertion)
        user = asserted.user
        if req.user is not None and req.user != user:
            raise AssertionRefused("it names another user than `user`")
        blocking = login_block(await self.facts(app), req.os, req.app_version)
        if blocking is not None:
            log.info("login of %.80r (app %s, %s %s) refused: mandatory %s", user, app,
                     req.os, req.app_version, blocking.version)
            raise _refusal(blocking, req.os, req.app_version)
        ask = self.confirm_takeover(app) and not req.force
        if ask:  # asked before the assertion is used up: the repeat may send it again
            for old in await self.repo.open_sessions(app=app, user=user):
                if old.device_id != req.device_id:
                    raise self._handover(old, user)
        await self.assertions.use(app, asserted)
        now = self._clock()
        if req.os in PUSH_PLATFORMS:  # the version a device reports at login: for notices
            await self._store.devices.upsert(
                user=user, app=app, platform=req.os, push_token=req.push_token,
                app_version=req.app_version, os_version=req.os_version,
                model=req.device_model, source="login")
        token = new_session_token()
        offline = self._config().model.apps[app].fallback.offline
        secret = new_secret() if offline.enabled else None
        try:
            session, ended = await self.repo.login(
                token_hash=hash_token(token), app=app, user=user, now=now, ask=ask,
                fallback_secret=secret,
                device_id=req.device_id, platform=req.platform, app_type=req.app_type,
                app_version=req.app_version, os=req.os, os_version=req.os_version,
                device_model=req.device_model, push_token=req.push_token)
        except HandoverNeeded as exc:  # another device logged in meanwhile
            raise self._handover(exc.session, user) from None
        told = [(old, await self._tell_replaced(old, req.device_id)) for old in ended]
        log.info("login: session %d of %.80r (app %s, %s %s %s)%s", session.id, user, app,
                 req.platform, req.os, req.app_version,
                 f"; ended session(s) {[o.id for o, _ in told]} (replaced)" if told else "")
        return token, session, told

    def confirm_takeover(self, app: str) -> bool:
        cfg = self._config().model
        own = cfg.apps[app].login.confirm_takeover
        return cfg.lifecycle.login.confirm_takeover if own is None else own

    @staticmethod
    def _handover(old: AppSession, user: str) -> HandoverRequired:
        log.info("login of %.80r (app %s) asks first: session %d is open on %s %s", user,
                 old.app, old.id, old.platform, old.device_id[:40])
        return HandoverRequired(old)

    async def _tell_replaced(self, old: AppSession, new_device: str) -> str:
        """Push "signed out" to the device of a replaced session (an alert on iOS, data on
        Android). A device that logs in again is not told it replaced itself."""
        if old.device_id == new_device:
            return "same_device"
        if not old.push_token or old.os not in PUSH_PLATFORMS or self._push is None:
            return "no_token"
        data = {"type": "session_ended", "reason": "replaced", "session_id": str(old.id)}
        try:
            r = await self._push.notify(
                PushTarget(old.app, old.os, old.push_token), "Signed out",
                "You signed in on another device", data, app=old.app, kind="session",
                ttl_seconds=3600)
        except PushError as exc:
            log.info("session %d replaced: its device could not be told: %s", old.id, exc)
            return "provider_error"
        log.info("session %d replaced: told its device (token#%s): %s", old.id,
                 token_hint(old.push_token), r.reason or "ok")
        return notice_result(r.ok, r.token_invalid)

    async def logout(self, session_id: int, user: str | None) -> dt.datetime:
        now = self._clock()
        await self.repo.end(session_id, LOGOUT, now)
        log.info("logout: session %d of %.80r", session_id, user)
        return now

    # ------------------------------------------------------------------ the token as a credential

    async def prove(self, token: bytes) -> ProvenSession | None:
        """The door's session check: the open session ``token`` stands for; None when it is
        no session's token. An ended session is refused (401 naming how it ended; 403
        UpdateRequired for a mandatory release), lazily ending one whose idle time or
        mandatory grace has run out."""
        session = await self.check(token)
        return ProvenSession(session.id, session.app, session.user) if session else None

    async def check(self, token: bytes) -> AppSession | None:
        """The open session ``token`` stands for (see :meth:`prove`)."""
        session = await self.repo.by_token(hash_token(token))
        if session is None:
            return None
        app = session.app
        releases = await self.facts(app)
        if session.ended_at is None:
            now = self._clock()
            end = session_end(platform=session.os, version=session.app_version,
                              last_seen=session.last_seen_at, now=now,
                              idle_seconds=self.idle_seconds(), releases=releases)
            if end is None:
                idle = self.idle_seconds()
                every = min(_TOUCH_EVERY, dt.timedelta(seconds=idle / 4)) if idle else \
                    _TOUCH_EVERY
                if now - session.last_seen_at >= every:
                    await self.repo.touch(session.id, now)
                return session
            reason, at = end
            await self.repo.end(session.id, reason, at)
            log.info("session %d of %.80r ended (%s)", session.id, session.user, reason)
            session.end_reason = reason
        if session.end_reason == MANDATORY_UPDATE:
            blocking = login_block(releases, session.os, session.app_version)
            if blocking is not None:
                raise _refusal(blocking, session.os, session.app_version)
        raise session_ended(session.end_reason or "ended")

    # ------------------------------------------------------------------ sweeping

    async def sweep(self) -> int:
        """Record the end of every open session whose idle time or mandatory grace has run
        out; how many ended."""
        now, idle = self._clock(), self.idle_seconds()
        facts: dict[str, list[ReleaseFacts]] = {}
        n = 0
        if idle is None:  # only a mandatory release can end a session: look at those apps
            apps = {r.app for r in await self.repo.releases() if r.kind == MANDATORY}
            rows = [s for app in sorted(apps) for s in await self.repo.open_sessions(app=app)]
        else:
            rows = await self.repo.open_sessions()
        for s in rows:
            if s.app not in facts:
                facts[s.app] = await self.facts(s.app)
            end = session_end(platform=s.os, version=s.app_version, last_seen=s.last_seen_at,
                              now=now, idle_seconds=idle, releases=facts[s.app])
            if end is not None and await self.repo.end(s.id, *end):
                n += 1
        if n:
            log.info("sessions: %d ended (idle or mandatory update)", n)
        return n
