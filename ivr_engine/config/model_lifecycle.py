"""Configuration of the app lifecycle (sessions, release notices): ``lifecycle:``."""

from __future__ import annotations

from pydantic import Field

from .fields import _Model


class LogUploads(_Model):
    """App logs on request: how long a request waits for its upload, the largest upload
    accepted, and how long uploads (and expired requests) are kept."""

    request_ttl_seconds: int = Field(86_400, ge=60, le=30 * 86_400)
    max_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    retention_days: float = Field(14, gt=0, le=365)
    # logs the app sends unasked (POST /v1/apps/<app>/logs): at most this many per user and
    # app in 24 hours (0: the app may send logs only when an admin asks)
    user_uploads_per_day: int = Field(5, ge=0, le=1000)


class Reminders(_Model):
    """Reminders of a recommended release: a device that was sent its notice and still
    reports an older version is sent the notice again ``after_seconds`` after the last one,
    at most ``max`` times (0, the default: no reminders). A release may set its own."""

    after_seconds: int = Field(3 * 86_400, ge=60, le=90 * 86_400)
    max: int = Field(0, ge=0, le=20)


class LoginSettings(_Model):
    """``confirm_takeover``: a login that would end the user's open session on another device
    is first answered 409 naming that session's platform and device; the app asks its user
    and repeats the login with ``force: true``. Off (the default): the login ends it at
    once. An app may say otherwise (``apps.<app>.login.confirm_takeover``)."""

    confirm_takeover: bool = False


class LifecycleSettings(_Model):
    """Sessions opened by ``POST /v1/apps/<app>/sessions`` and release notices.

    ``idle_expiry_seconds``: a session not used (no SDK request with its token) for this long
    ends with reason ``expired``; unset (the default) means sessions only end by logout, a new
    login or a mandatory release. ``sweep_seconds``: how often ended sessions (idle, a
    mandatory release's grace run out) are recorded as ended. ``notice_concurrency``: push
    sends in flight at once during a release fan-out; ``notice_batch``: notices recorded per
    database write; ``notice_rate_per_second``: at most this many notices a second (1 200: 10 000
    devices in about 8.5 s; ``null``: as fast as the providers answer), which leaves CPU to
    the calls in progress (see the README's fan-out figures).
    """

    idle_expiry_seconds: float | None = Field(None, ge=1, le=90 * 86_400)
    sweep_seconds: float = Field(30.0, ge=1, le=3600)
    notice_concurrency: int = Field(16, ge=1, le=2000)
    notice_batch: int = Field(200, ge=1, le=10_000)
    notice_rate_per_second: float | None = Field(1200, gt=0, le=100_000)
    logs: LogUploads = LogUploads()
    reminders: Reminders = Reminders()
    login: LoginSettings = LoginSettings()
