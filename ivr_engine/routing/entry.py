"""Which entry point does a call take? Pure decisions over the compiled routing table.

PSTN calls are matched in this order (as the seed platforms do):
1. user-segment access points, in file order (caller number patterns or lists, optionally only
   for some dialled numbers; a segment of an app's verified users matches that app's calls
   carrying one of them, whatever the number);
2. phone-number access points (the dialled number);
3. a mobile app's PSTN fallback number: the call belongs to that app and enters its
   mobile-app access point once its one-time token (or, if allowed, its caller) is matched;
4. otherwise ``routing.unknown_number``.
``ivr-engine check`` reports every place where 1 or 2 can take an app's callers away from
that app's tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from ..ivr.destinations import Destination
from ..ivr.tree import EntryPoint


def normalize_number(number: str) -> str:
    """Drop spaces, dashes, dots and parentheses; keep a leading +."""
    return re.sub(r"[\s\-.()]", "", number or "")


def number_variants(number: str) -> tuple[str, ...]:
    """The number as given and with its leading ``+`` added or removed (trunks differ)."""
    n = normalize_number(number)
    if not n:
        return ()
    return (n, n[1:]) if n.startswith("+") else (n, "+" + n)


@dataclass(frozen=True, slots=True)
class Segment:
    label: str
    menu: str
    language: str
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    numbers: frozenset[str] = frozenset()  # empty: applies to every dialled number
    app: str | None = None  # whose verified users ``users`` are
    users: frozenset[str] = frozenset()

    def has_user(self, app: str, user: str | None) -> bool:
        """A verified user of ``app`` this segment lists (never a number: it proves nobody)."""
        return user is not None and self.app == app and user in self.users

    def applies_to(self, did: str) -> bool:
        return not self.numbers or any(v in self.numbers for v in number_variants(did))

    def matches(self, caller: str) -> bool:
        for v in number_variants(caller):
            if v in self.exact or any(v.startswith(p) for p in self.prefixes):
                return True
        return False


#: why an app is inactive: ``AppEntry.inactive_reason`` → what it means
INACTIVE_REASONS = {
    "switched-off": "its switch is off (active: false)",
    "no-in-app-access-point": "it has no mobile-app access point in the in-app structure "
                              "(surface: in-app)",
    "no-ivr-access-point": "it has no mobile-app access point in the IVR structure "
                           "(surface: ivr), where its calls enter",
}


@dataclass(frozen=True, slots=True)
class AppEntry:
    """A mobile app as routing sees it."""

    app: str
    menu: str | None  # its mobile-app access point in the IVR structure (surface ivr)
    languages: tuple[str, ...]  # first is the app's default language
    fallback_number: str | None
    threshold: float | None
    match: str  # token | caller | token-or-caller
    token_ttl_seconds: int
    token_digits: int
    token_wait_seconds: float
    block_outside: bool
    block_message: str | None
    hardened_digits: int = 0  # a long token's length while the app is hardened (guard.py)
    code_digits: int | None = None  # offline codes' length; None: no offline codes
    in_app_menu: str | None = None  # its mobile-app access point in the in-app structure
    switched_on: bool = True  # the app's `active` switch

    @property
    def inactive_reason(self) -> str | None:
        """Why the app is inactive (None: it is active). An app is active when its switch is
        on and it has a mobile-app access point in both structures: the in-app one (its
        SDK's menu) and the IVR one (where its calls enter)."""
        if not self.switched_on:
            return "switched-off"
        if self.in_app_menu is None:
            return "no-in-app-access-point"
        if self.menu is None:
            return "no-ivr-access-point"
        return None

    @property
    def active(self) -> bool:
        return self.inactive_reason is None

    def inactive_detail(self) -> str:
        reason = self.inactive_reason
        return f"app {self.app!r} is active" if reason is None else \
            f"app {self.app!r} is inactive: {INACTIVE_REASONS[reason]}"

    @property
    def default_language(self) -> str:
        return self.languages[0]

    def language_for(self, requested: str | None) -> str:
        if requested:
            if requested in self.languages:
                return requested
            base = requested.split("_")[0]
            if base in self.languages:
                return base
        return self.default_language


@dataclass(frozen=True, slots=True)
class RoutingTable:
    segments: tuple[Segment, ...]
    numbers: Mapping[str, EntryPoint]
    apps: Mapping[str, AppEntry]
    app_numbers: Mapping[str, str]  # fallback number -> app
    unknown: Destination
    default_language: str
    queues_by_root: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EntryDecision:
    """Either a menu to start in (``entry``) or a destination to go to at once.

    ``via`` says which rule matched: segment | number | app-fallback | app | unknown.
    For ``app-fallback`` the shell first reads the app's token, then calls
    :func:`after_token`.
    """

    entry: EntryPoint | None
    destination: Destination | None
    label: str
    language: str
    via: str = "number"
    app: str | None = None


def route_pstn(table: RoutingTable, did: str, caller: str = "") -> EntryDecision:
    n = normalize_number(did)
    for seg in table.segments:
        if seg.applies_to(n) and seg.matches(caller):
            ep = EntryPoint("user-segment", seg.label, seg.menu, seg.language)
            return EntryDecision(ep, None, seg.label, seg.language, "segment")
    for v in number_variants(n):
        ep = table.numbers.get(v)
        if ep is not None:
            return EntryDecision(ep, None, ep.label, ep.language, "number")
    for v in number_variants(n):
        app_name = table.app_numbers.get(v)
        if app_name is not None:
            app = table.apps[app_name]
            if app.active:
                return EntryDecision(None, None, f"app:{app_name}", app.default_language,
                                     "app-fallback", app_name)
    label = f"did:{n}" if n else "did:unknown"
    return EntryDecision(None, table.unknown, label, table.default_language, "unknown")


def route_app(table: RoutingTable, app_name: str, language: str | None = None,
              user: str | None = None) -> EntryDecision:
    """A call known to come from inside the app (VoIP from the SDK, or a matched token);
    ``user``: the user it carries when verified (a segment of that app's users wins)."""
    app = table.apps.get(app_name)
    if app is None or not app.active:
        return EntryDecision(None, table.unknown, f"app:{app_name}", table.default_language,
                             "unknown", None)
    for seg in table.segments:
        if seg.has_user(app_name, user):
            lang = app.language_for(language) if language else seg.language
            ep = EntryPoint("user-segment", seg.label, seg.menu, lang)
            return EntryDecision(ep, None, seg.label, lang, "segment", app_name)
    lang = app.language_for(language)
    ep = EntryPoint("mobile-app", f"app:{app_name}", app.menu, lang)  # type: ignore[arg-type]
    return EntryDecision(ep, None, ep.label, lang, "app", app_name)


def after_token(table: RoutingTable, decision: EntryDecision, matched: bool,
                language: str | None = None, user: str | None = None) -> EntryDecision:
    """Where an ``app-fallback`` call goes once its token (or offline code) was (or was not)
    matched; ``user``: the verified user it carries."""
    assert decision.app is not None
    if matched:
        return route_app(table, decision.app, language, user)
    return outside_app(table, decision.app)


def outside_app(table: RoutingTable, app_name: str) -> EntryDecision:
    """A call on the app's fallback number that was not matched to an app intent."""
    app = table.apps[app_name]
    if app.block_outside:
        assert app.block_message is not None
        return EntryDecision(None, Destination("message-then-hangup", app.block_message),
                             f"app:{app_name}", app.default_language, "blocked", app_name)
    ep = EntryPoint("mobile-app", f"app:{app_name}", app.menu,  # type: ignore[arg-type]
                    app.default_language)
    return EntryDecision(ep, None, ep.label, app.default_language, "app-outside", app_name)
