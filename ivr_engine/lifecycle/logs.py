"""App logs on request: an admin asks a user's devices for their logs (a push carrying the
request id), the device uploads once to ``PUT /v1/log-requests/{id}/upload`` (size limit,
content type checked), the admin lists and downloads; requests expire, uploads are purged
after the retention. The app may also send its logs unasked (``POST /v1/apps/{app}/logs``,
the user's session): at most ``lifecycle.logs.user_uploads_per_day`` per user and app in 24
hours, stored, listed, downloaded and purged like the requested ones (``origin`` user).

An upload is never whole in memory: the body goes to an anonymous temporary file (written off
the event loop, refused past ``lifecycle.logs.max_bytes``), then into the database 1 MiB at a
time (``logrepo.py``); a download is streamed back the same way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import secrets
import tempfile
from typing import IO, Any, AsyncIterator, Callable

from aiohttp import web

from ..api.problems import Problem
from ..push import PushError
from .logrepo import CHUNK_BYTES
from .models import LogRequest
from .rules import notice_result
from .schemas import LogRequestInfo

log = logging.getLogger("ivr_engine.lifecycle")

LOG_TYPES = ("text/plain", "application/gzip", "application/zip")
READ_BYTES = 256 * 1024
DAY = dt.timedelta(days=1)


def state_of(row: LogRequest, now: dt.datetime) -> str:
    if row.uploaded_at is not None:
        return "uploaded"
    return "expired" if row.expires_at <= now else "pending"


def info(row: LogRequest, now: dt.datetime) -> LogRequestInfo:
    return LogRequestInfo(id=row.id, app=row.app, user=row.user, device=row.device_id,
                          platform=row.platform, created_at=row.created_at,
                          expires_at=row.expires_at, push=row.push_result,
                          state=state_of(row, now), uploaded_at=row.uploaded_at,  # type: ignore[arg-type]
                          content_type=row.content_type, size=row.size,
                          origin=row.origin, session_id=row.session_id)  # type: ignore[arg-type]


def upload_type(header: str | None) -> str:
    """The upload's media type (one of LOG_TYPES), or 415."""
    mime = (header or "").split(";")[0].strip().lower()
    if mime not in LOG_TYPES:
        raise Problem(415, "Unsupported Media Type",
                      f"a log upload is sent as one of {', '.join(LOG_TYPES)}")
    return mime


async def spool_upload(request: web.Request, limit: int) -> tuple[IO[bytes], int]:
    """The body in an anonymous temporary file (written off the loop) and its size; 413
    past ``limit`` bytes (from the declared length, or while reading)."""
    too_big = Problem(413, "Payload Too Large", f"a log upload is limited to {limit} bytes")
    if (request.content_length or 0) > limit:
        raise too_big
    f = await asyncio.to_thread(tempfile.TemporaryFile, prefix="ivr-log-")
    try:
        size = 0
        async for chunk in request.content.iter_chunked(READ_BYTES):
            size += len(chunk)
            if size > limit:
                raise too_big
            await asyncio.to_thread(f.write, chunk)
        return f, size
    except BaseException:
        await asyncio.to_thread(f.close)
        raise


async def _pieces(f: IO[bytes]) -> AsyncIterator[bytes]:
    await asyncio.to_thread(f.seek, 0)
    while data := await asyncio.to_thread(f.read, CHUNK_BYTES):
        yield data


async def send_log(request: web.Request, repo: Any, request_id: str) -> web.StreamResponse:
    """The download: the upload streamed a chunk at a time, with the media type the device
    declared in ``X-Log-Content-Type``; 404 when there is none."""
    row = await repo.get(request_id)
    if row is None or row.blob is None:
        raise Problem(404, "No log", "no such log request, or nothing uploaded yet",
                      field="request")
    resp = web.StreamResponse(headers={
        "X-Log-Content-Type": row.content_type or "",
        "Content-Disposition": f'attachment; filename="log-{row.id}"'})
    resp.content_type = "application/octet-stream"
    resp.content_length = row.size
    await resp.prepare(request)
    seq = 0
    while (data := await repo.chunk(row.blob, seq)) is not None:
        await resp.write(data)
        seq += 1
    await resp.write_eof()
    return resp


class LogRequests:
    def __init__(self, config: Callable[[], Any], store: Any, push: Any,
                 clock: Callable[[], dt.datetime]):
        self._config, self._store, self._push, self._clock = config, store, push, clock

    @property
    def settings(self) -> Any:
        return self._config().model.lifecycle.logs

    async def ask(self, app: str, user: str, device: int | None) -> list[LogRequest]:
        """One request per device (all the user's devices of the app, or ``device``), each
        device asked by push; 404 when there is no such device."""
        devices = [d for d in await self._store.devices.for_user(user, app)
                   if device is None or d.id == device]
        if not devices:
            raise Problem(404, "No device", f"user {user[:80]!r} has no such device "
                          f"registered for app {app!r}", field="device" if device else "user")
        now = self._clock()
        expires = now + dt.timedelta(seconds=self.settings.request_ttl_seconds)
        rows = []
        for d in devices:
            rid = secrets.token_urlsafe(16)
            data = {"type": "log_request", "request_id": rid,
                    "upload": f"/v1/log-requests/{rid}/upload",
                    "expires_at": expires.isoformat()}
            try:
                if self._push is None:
                    raise PushError("no push service")
                r = await self._push.notify(d, "Logs requested", "Your support team asked "
                                            "for this app's logs", data, app=app, kind="logs",
                                            ttl_seconds=self.settings.request_ttl_seconds)
                how = notice_result(r.ok, r.token_invalid) if d.push_token else "no_token"
            except PushError as exc:
                log.info("log request to device %d of %.80r: %s", d.id, user, exc)
                how = "provider_error"
            rows.append(LogRequest(id=rid, app=app, user=user, device_id=d.id,
                                   platform=d.platform, created_at=now, expires_at=expires,
                                   push_result=how, origin="admin"))
        await self._store.lifecycle.logs.add(rows)
        return rows

    async def upload(self, row: LogRequest, request: web.Request) -> tuple[int, str, Any]:
        """Store the request's upload; (size, content type, when). 409 when already
        uploaded, 410 when expired, 415 for another media type, 413 when too large."""
        now = self._clock()
        state = state_of(row, now)
        if state == "uploaded":
            raise Problem(409, "Already uploaded", "this log request has its upload")
        if state == "expired":
            raise Problem(410, "Gone", "this log request has expired")
        mime = upload_type(request.headers.get("Content-Type"))
        f, size = await spool_upload(request, self.settings.max_bytes)
        try:
            stored = await self._store.lifecycle.logs.store_upload(
                row.id, _pieces(f), size=size, content_type=mime, now=now)
        finally:
            await asyncio.to_thread(f.close)
        if not stored:
            raise Problem(409, "Already uploaded", "this log request has its upload")
        log.info("log request %s: %d bytes (%s) from %.80r", row.id[:6], size, mime, row.user)
        return size, mime, now

    async def send_own(self, app: str, user: str, session_id: int,
                       request: web.Request) -> LogRequest:
        """Keep the logs the app sends unasked for the session's user: 409 when the app may
        not (``user_uploads_per_day`` 0), 429 past the user's budget (``Retry-After``: when
        the oldest upload of the last 24 hours leaves it), else as an upload (415, 413)."""
        most = self.settings.user_uploads_per_day
        if most == 0:
            raise Problem(409, "Logs not accepted unasked", "this engine takes an app's logs "
                          "only when an admin asks (lifecycle.logs.user_uploads_per_day is 0)")
        now = self._clock()
        since = now - DAY
        sent, oldest = await self._store.lifecycle.logs.own_since(app, user, since)
        if sent >= most:
            raise self._over_budget(most, now, oldest)
        mime = upload_type(request.headers.get("Content-Type"))
        session = await self._store.lifecycle.fallback_of(session_id)
        platform = session.os if session is not None else ""
        device = next((d.id for d in await self._store.devices.for_user(user, app)
                       if d.platform == platform), None)
        row = LogRequest(id=secrets.token_urlsafe(16), app=app, user=user, device_id=device,
                         platform=platform, created_at=now, expires_at=now,
                         push_result="unasked", uploaded_at=now, content_type=mime,
                         origin="user", session_id=session_id)
        f, size = await spool_upload(request, self.settings.max_bytes)
        row.size = size
        try:
            stored = await self._store.lifecycle.logs.store_own(row, _pieces(f), since=since,
                                                                most=most)
        finally:
            await asyncio.to_thread(f.close)
        if not stored:  # another upload of the user's took the last place meanwhile
            raise self._over_budget(most, now, now)
        log.info("logs sent unasked %s: %d bytes (%s) from %.80r (session %d)", row.id[:6],
                 size, mime, user, session_id)
        return row

    @staticmethod
    def _over_budget(most: int, now: dt.datetime, oldest: dt.datetime | None) -> Problem:
        free_at = (oldest or now) + DAY
        wait = max(1, math.ceil((free_at - now).total_seconds()))
        return Problem(429, "Too Many Requests", f"this user has sent logs {most} times in "
                       "the last 24 hours (lifecycle.logs.user_uploads_per_day)",
                       headers={"Retry-After": str(wait)})

    async def purge(self) -> int:
        now = self._clock()
        before = now - dt.timedelta(days=self.settings.retention_days)
        return await self._store.lifecycle.logs.purge(before, now)
