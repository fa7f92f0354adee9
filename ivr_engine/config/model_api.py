"""The engine's HTTP API settings: ``engine.api`` (listeners, the admin token, the URL other
engines reach this one at, the door's rate limits, connection and stream caps)."""

# ruff: noqa: RUF012 - pydantic fields; ruff cannot see that _Model (fields.py) is a BaseModel

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from .fields import Secret, _Model
from .model_livedata import StreamLimits


def _listen(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{v!r} is not host:port")
    return v


def _advertise(v: str) -> str:
    if not re.fullmatch(r"https?://[^/\s?#@]+:\d{1,5}/?", v):
        raise ValueError(f"{v!r} is not http(s)://host:port (the URL other engines reach "
                         "this engine's admin routes at)")
    return v.rstrip("/")


class RateLimit(_Model):
    """A token bucket: ``rate`` requests per second sustained, ``burst`` at once."""

    rate: float = Field(gt=0, le=100_000)
    burst: int = Field(ge=1, le=100_000)


class ApiRateLimits(_Model):
    """The door's limits (api/door.py). Per address on every route, before anything else;
    failed credentials per address (past them: 429 before any comparison); after the
    credential, per user (a session), per app key and address (the key ships in every copy
    of the app, so it is never one bucket for everybody), and an app's ceiling."""

    per_address: RateLimit = RateLimit(rate=20, burst=40)
    failed_credentials: RateLimit = RateLimit(rate=1, burst=30)
    per_user: RateLimit = RateLimit(rate=10, burst=20)
    per_client: RateLimit = RateLimit(rate=10, burst=20)
    per_app: RateLimit = RateLimit(rate=200, burst=400)

    @model_validator(mode="before")
    @classmethod
    def _per_key(cls, data: object) -> object:
        """``per_key`` (one bucket per app key, before 0.2) is now ``per_client``."""
        if isinstance(data, dict) and "per_key" in data:
            data = dict(data)
            old = data.pop("per_key")
            data.setdefault("per_client", old)
        return data


class ConnectionLimits(_Model):
    """HTTP connections the engine holds at once (read at start). Each is a file descriptor:
    the listeners take at most ``RLIMIT_NOFILE - reserve_fds`` (or ``max``, if lower), so
    calls, the database, Asterisk and the providers keep ``reserve_fds`` whatever the HTTP
    side does; past it (or past ``per_address`` from one address) a new connection gets a
    503 and is closed at once."""

    reserve_fds: int = Field(256, ge=16, le=1_000_000, description="descriptors kept for "
                             "everything but HTTP clients")
    max: int | None = Field(None, ge=16, le=10_000_000, description="at most this many "
                            "(default: the descriptor limit minus reserve_fds)")
    per_address: int = Field(256, ge=1, le=10_000_000, description="from one client address")


class ApiSettings(_Model):
    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:8080"
    # admin routes only, on their own listener (keep it private); unset: with the others
    admin_listen: Annotated[str, AfterValidator(_listen)] | None = None
    enabled: bool = True
    admin_token: Secret = None  # admin routes need it as a Bearer token; unset: refused
    # where the other engines on the database reach this engine's admin routes (API calls
    # for a call this engine holds are forwarded there); unset: http://<admin_listen or
    # listen>, an unspecified address (0.0.0.0, ::) taken as 127.0.0.1
    advertise: Annotated[str, AfterValidator(_advertise)] | None = None
    rate_limit: ApiRateLimits = ApiRateLimits()
    connections: ConnectionLimits = ConnectionLimits()
    streams: StreamLimits = StreamLimits()

    @model_validator(mode="after")
    def _two_listeners(self) -> "ApiSettings":
        if self.admin_listen is not None and self.admin_listen == self.listen:
            raise ValueError("admin_listen must differ from listen (or be left out)")
        return self

    @property
    def advertised(self) -> str:
        """``advertise``, or the URL of the admin routes' own listener."""
        if self.advertise is not None:
            return self.advertise
        host, _, port = (self.admin_listen or self.listen).rpartition(":")
        host = host.strip("[]")
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"
