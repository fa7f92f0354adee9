"""Configuration of the app lifecycle (sessions, release notices): ``lifecycle:``."""

from __future__ import annotations

from pydantic import Field

from .fields import _Model


class LifecycleSettings(_Model):
    """Sessions opened by ``POST /v1/apps/<app>/sessions`` and release notices.

    ``idle_expiry_seconds``: a session not used (no SDK request with its token) for this long
    ends with reason ``expired``; unset (the default) means sessions only end by logout, a new
    login or a mandatory release. ``sweep_seconds``: how often ended sessions (idle, a
    mandatory release's grace run out) are recorded as ended. ``notice_concurrency``: push
    sends in flight at once during a release fan-out; ``notice_batch``: notices recorded per
    database write.
    """

    idle_expiry_seconds: float | None = Field(None, ge=1, le=90 * 86_400)
    sweep_seconds: float = Field(30.0, ge=1, le=3600)
    notice_concurrency: int = Field(32, ge=1, le=2000)
    notice_batch: int = Field(200, ge=1, le=10_000)
