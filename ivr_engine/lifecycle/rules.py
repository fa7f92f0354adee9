"""The lifecycle's decisions, pure: who gets a release notice, whether a login (or a session,
or a call) is allowed under the app's mandatory releases, when a session has ended.

Nothing here touches the store, the network or the clock: callers pass ``now``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Sequence

from .versions import Version, VersionError, older_or_unknown, parse_version

# how a session ended (the report's "ended" column)
LOGOUT, REPLACED, MANDATORY_UPDATE, EXPIRED = "logout", "replaced", "mandatory_update", "expired"
END_REASONS = (LOGOUT, REPLACED, MANDATORY_UPDATE, EXPIRED)

# a notice's delivery result, per device
SENT, PROVIDER_ERROR, TOKEN_REMOVED = "sent", "provider_error", "token_removed"

RECOMMENDED, MANDATORY = "recommended", "mandatory"
PUSH_PLATFORMS = ("ios", "android")  # the OSes a notice can be pushed to


@dataclass(frozen=True)
class ReleaseFacts:
    """What the decisions need of a published release."""

    id: int
    platform: str  # ios | android | windows | macos | linux | web
    version: Version
    kind: str  # recommended | mandatory
    store_url: str
    published_at: dt.datetime
    grace_seconds: int = 0

    @property
    def enforce_at(self) -> dt.datetime:
        """When sessions below a mandatory release end: at the notice, or after the grace."""
        return self.published_at + dt.timedelta(seconds=self.grace_seconds)


@dataclass(frozen=True)
class DeviceFacts:
    id: int
    version: str | None  # the version the device last reported
    has_token: bool
    user: str = ""


def _mandatory_above(releases: Iterable[ReleaseFacts], platform: str,
                     version: Version) -> list[ReleaseFacts]:
    return [r for r in releases
            if r.kind == MANDATORY and r.platform == platform and version < r.version]


def login_block(releases: Iterable[ReleaseFacts], platform: str,
                version: str) -> ReleaseFacts | None:
    """The mandatory release that refuses this login (the highest one above ``version`` for
    the platform), or None. From the moment a mandatory release is published, a device below
    it cannot log in: the grace period only delays the end of sessions already open.
    Raises VersionError for an unparseable version (the API's 422)."""
    above = _mandatory_above(releases, platform, parse_version(version))
    return max(above, key=lambda r: r.version) if above else None


def session_block(releases: Iterable[ReleaseFacts], platform: str, version: str,
                  now: dt.datetime) -> ReleaseFacts | None:
    """The mandatory release whose grace has run out for a session at ``version``: the
    session has ended (reason ``mandatory_update``). None while none applies."""
    try:
        parsed = parse_version(version)
    except VersionError:  # stored versions were parsed at login; be safe anyway
        return None
    due = [r for r in _mandatory_above(releases, platform, parsed) if r.enforce_at <= now]
    return min(due, key=lambda r: r.enforce_at) if due else None


def notice_targets(devices: Iterable[DeviceFacts], release: Version, already_sent: set[int],
                   logged_out: frozenset[str] | set[str] = frozenset()) -> list[DeviceFacts]:
    """The devices a (re-)publication notifies: those whose last reported version is older
    than the release, that were not sent this release's notice already, and whose user is
    not logged out of the app (``logged_out``: users who have had sessions but have none
    open; a device registered by a user who never logged in is reachable). A device at or
    above the release, or whose version is unknown, gets nothing; a device that was not
    reached (logged out, provider error, token gone) is not chased: only a re-publication
    tries it again."""
    return [d for d in devices
            if d.id not in already_sent and d.user not in logged_out
            and older_or_unknown(d.version, release) is True]


def idle_expired(last_seen: dt.datetime, now: dt.datetime, idle_seconds: float | None) -> bool:
    """With idle expiry on, a session not used for ``idle_seconds`` has ended (``expired``)."""
    return idle_seconds is not None and now - last_seen >= dt.timedelta(seconds=idle_seconds)


def ended_at_for(reason: str, *, now: dt.datetime, last_seen: dt.datetime,
                 idle_seconds: float | None, release: ReleaseFacts | None) -> dt.datetime:
    """When a session found ended lazily did end: an idle one when its idle time ran out, a
    mandatory one when its release was enforced, anything else now."""
    if reason == EXPIRED and idle_seconds is not None:
        return min(now, last_seen + dt.timedelta(seconds=idle_seconds))
    if reason == MANDATORY_UPDATE and release is not None:
        return min(now, max(release.enforce_at, last_seen))
    return now


def session_end(*, platform: str, version: str, last_seen: dt.datetime, now: dt.datetime,
                idle_seconds: float | None,
                releases: Sequence[ReleaseFacts]) -> tuple[str, dt.datetime] | None:
    """Whether an open session has ended by now, and (reason, when); None when it lives.
    A mandatory release takes precedence over idleness (the report says why it matters)."""
    release = session_block(releases, platform, version, now)
    if release is not None:
        return MANDATORY_UPDATE, ended_at_for(MANDATORY_UPDATE, now=now, last_seen=last_seen,
                                              idle_seconds=idle_seconds, release=release)
    if idle_expired(last_seen, now, idle_seconds):
        return EXPIRED, ended_at_for(EXPIRED, now=now, last_seen=last_seen,
                                     idle_seconds=idle_seconds, release=None)
    return None


def notice_result(ok: bool, token_invalid: bool) -> str:
    """A push's answer as a notice's recorded result."""
    return SENT if ok else TOKEN_REMOVED if token_invalid else PROVIDER_ERROR


def active_key(app: str, user: str) -> str:
    """The value of ``app_sessions.active_user`` while a session is open: unique, so a user
    has at most one open session per app even when two logins race."""
    return f"{app}\x1f{user}"
