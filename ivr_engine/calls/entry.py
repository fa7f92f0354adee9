"""How a call enters the IVR: routing a new call, reading an app's fallback token, or taking
over a call another engine process was driving.

``Stasis(ivr-engine,pstn,<DID>)`` is routed at once (routing/entry.py), except on a mobile
app's fallback number, where the call is answered and the :class:`TokenPhase` reads the
``<token>#`` (or, with no data path, ``<session>*<code>#``) the app dials after the number;
``Stasis(ivr-engine,app,<app>,<token>)`` (VoIP from inside the app) carries its token. Both
go through the guard (apps/guard.py): every try is counted before its lookup. A token of a
user's session, or an offline code, gives the call its verified user. A call found in the
application after a reconnect, or back from the dialplan's watchdog (``resume``), resumes
from the variables on its channel.

Every query a caller waits for here has ``engine.database.call_deadline_seconds``
(``deadlines.py``): past it, or when the database fails, a new caller goes to the dialplan
fallback (message + fallback queue: never the app's outside policy, which may block a caller
the app did send); a caller taken over goes on without its app's custom data.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .. import metrics
from ..apps.guard import Attempt, GuessLimits, Kind
from ..ari import ChannelDtmfReceived
from ..deadlines import CallerWaitFailed, caller_wait
from ..ivr.resume import plan_resume
from ..ivr.runtime import WATCHDOG_VARIABLE
from ..routing.entry import AppEntry, EntryDecision, after_token, route_app, route_pstn
from ..users.directory import for_call
from .ivr import IvrPhase
from .phase import Call, Phase, TokenTimeout, TransferRequest
from .start import start_ivr
from .takeover import read_state, stop_stale


log = logging.getLogger("ivr_engine.calls")


def stasis_args(call: Call) -> tuple[str, str, str]:
    """``(pstn, <DID>, "")``, ``(app, <app>, <token>)`` or ``(resume, "", "")``."""
    args = call.start.args
    kind = args[0] if args else "pstn"
    target = args[1] if len(args) > 1 else call.start.channel.exten
    extra = args[2] if len(args) > 2 else ""
    return kind, target, extra


MAX_KEYS = 32  # post-dial keys read before giving up on the `#`


def _verified(intent: Any) -> str | None:
    return intent.user if intent is not None and intent.verified else None


async def new_call(call: Call) -> Phase | None:
    if not call.config.engine.watchdog.enabled:  # the dialplan armed its entry watchdog
        await call.ari.set_variable(call.channel_id, WATCHDOG_VARIABLE, "0")
    table = call.config.routing
    kind, target, extra = stasis_args(call)
    caller = call.start.channel.caller_number
    if kind == "app":  # VoIP from inside the app: the SDK passed its token in a header
        decision = route_app(table, target)
        intent = None
        if decision.app and extra and call.services.store is not None:
            app = table.apps[decision.app]
            try:
                intent, _, _ = await _look_up(call, app, extra, "VoIP")
            except CallerWaitFailed:
                await call.rescue()
                return None
        if intent is not None:
            decision = route_app(table, target, intent.language, _verified(intent))
        return await start_ivr(call, decision, intent, _verified(intent))
    decision = route_pstn(table, target, caller)
    if decision.via != "app-fallback":
        return await start_ivr(call, decision, None)
    assert decision.app is not None
    app = table.apps[decision.app]
    if call.services.store is None:  # nothing to match against: an outside caller
        return await start_ivr(call, after_token(table, decision, False), None)
    if app.match == "caller":
        return await _matched(call, decision, app, "")
    wd = call.config.engine.watchdog
    if wd.enabled:  # an engine that dies now must not leave the caller in Stasis
        await call.ari.set_variable(call.channel_id, WATCHDOG_VARIABLE,
                                    f"{token_watchdog_seconds(call, app):g}")
    await call.ari.answer(call.channel_id)
    return TokenPhase(call, decision, app)


def token_watchdog_seconds(call: Call, app: AppEntry) -> float:
    """Asterisk's watchdog over the token phase: the wait for ``<token>#``, the three queries
    that may follow it (the guard counting the try, the lookup, then the guard giving a
    matched try back or the caller's number looked up), and the grace the menus get."""
    eng = call.config.engine
    return app.token_wait_seconds + 3 * eng.database.call_deadline_seconds + \
        eng.watchdog.grace_seconds


async def _db_wait(call: Call, wait: str, coro: Any, **kw: Any) -> Any:
    return await caller_wait(call.spawn, call.config.engine.database.call_deadline_seconds,
                             wait, call.channel_id, coro, **kw)


class TokenPhase:
    """Post-dial DTMF ``<token>#``: whatever arrived when ``#`` or the deadline comes."""

    def __init__(self, call: Call, decision: EntryDecision, app: AppEntry):
        self.call, self.decision, self.app = call, decision, app
        self.got = ""
        self._over = False  # the token was read: later keys and timers are not its
        self._timer = call.spawn(self._deadline(app.token_wait_seconds))

    async def _deadline(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.call.post(TokenTimeout())

    async def handle(self, ev: object) -> Phase | None:
        if self._over:
            if isinstance(ev, TransferRequest):
                ev.done.set_result(False)
            return None
        if isinstance(ev, ChannelDtmfReceived) and ev.channel_id == self.call.channel_id:
            if ev.digit != "#":
                self.got += ev.digit
            if ev.digit == "#" or len(self.got) > MAX_KEYS:
                return await self._done()
        elif isinstance(ev, TokenTimeout):
            return await self._done()
        elif isinstance(ev, TransferRequest):
            ev.settle("token")  # not in the IVR yet
        return None

    async def caller_left(self) -> None:
        self._timer.cancel()

    async def _done(self) -> Phase | None:
        self._over = True
        self._timer.cancel()
        got = self.got if self.got.replace("*", "").isdigit() else ""
        return await _matched(self.call, self.decision, self.app, got)


def _kind(app: AppEntry, presented: str) -> Kind:
    """What a fallback caller presented: an offline code, a long (hardened) token, or a
    token of the app's length (anything else counts as a wrong short token)."""
    if "*" in presented and app.code_digits is not None:
        return Kind.CODE
    if app.hardened_digits and len(presented) == app.hardened_digits:
        return Kind.LONG
    return Kind.TOKEN


async def _look_up(call: Call, app: AppEntry, presented: str,
                   path: str) -> tuple[Any, str | None, bool]:
    """(the intent a token matched, the verified user an offline code matched, whether the
    guard refused the try), through the guard: the try is counted before the lookup and
    given back only when it matches; a short token over a limit, or while the app is
    hardened, is not looked up at all. Each query has the caller's deadline
    (CallerWaitFailed past it: the try stays counted, as a wrong one)."""
    store: Any = call.services.store
    caller = call.start.channel.caller_number
    guessing = call.config.model.apps[app.app].fallback.guessing
    limits = GuessLimits(guessing.per_caller, guessing.per_app, guessing.window_seconds)
    guard, kind = call.services.token_guard, _kind(app, presented)
    # counted before the lookup; a try that cannot be counted (the database is away) is
    # never looked up: the guard fails closed, the caller goes to the fallback
    attempt = await _db_wait(call, "token-guard", guard.admit(
        app.app, caller, kind, limits, call.clock()),
        then=f"its {kind.value} is not checked (fails closed): the caller goes to the "
        "fallback")
    if not isinstance(attempt, Attempt):
        metrics.TOKEN_GUESSING_REFUSED.labels(app.app).inc()
        metrics.TOKEN_TRIES.labels(app.app, kind.value, "refused").inc()
        log.warning("call %s (%s) on app %r: %s not looked up: %s", call.channel_id, path,
                    app.app, kind.value, attempt)
        return None, None, True
    intent, user = None, None
    try:
        if kind is Kind.CODE:
            offline = call.services.offline
            found = await _db_wait(call, "offline-code", offline.verify(app.app, presented)) \
                if offline is not None else None
            user = found.user if found is not None else None
        elif presented.isdigit():
            intent = await _db_wait(call, "token", store.intents.consume_token(
                app.app, presented, call.clock(), call.channel_id))
    except CallerWaitFailed:
        await guard.failed(attempt)
        raise
    matched = intent is not None or user is not None
    metrics.TOKEN_TRIES.labels(app.app, kind.value, "matched" if matched else "wrong").inc()
    if matched:
        await _give_back(call, guard, attempt)
    else:
        await guard.failed(attempt)
        log.info("call %s (%s): wrong %s for app %r from %r", call.channel_id, path,
                 kind.value, app.app, caller)
    return intent, user, False


async def _give_back(call: Call, guard: Any, attempt: Attempt) -> None:
    """A matched try is given back; when the database cannot, it stays counted (the caller,
    whose token matched, goes on)."""
    try:
        await _db_wait(call, "token-guard-give-back", guard.succeeded(attempt),
                       then="the matched try stays counted; the caller goes on")
    except CallerWaitFailed:
        pass


async def _matched(call: Call, decision: EntryDecision, app: AppEntry,
                   presented: str) -> Phase | None:
    """Match what the caller presented — a token, an offline code — (or, if the app allows,
    the caller's number) to the app; the call enters with the verified user it carries."""
    store: Any = call.services.store
    caller = call.start.channel.caller_number
    try:
        intent, user, refused = (await _look_up(call, app, presented, "fallback")) \
            if presented else (None, None, False)
        if intent is None and user is None and not refused and app.match != "token":
            intent = await _db_wait(call, "caller-match", store.intents.consume_by_caller(
                app.app, caller, call.clock(), call.channel_id))
    except CallerWaitFailed:
        await call.rescue()
        return None
    user = user or _verified(intent)
    decision = after_token(call.config.routing, decision, intent is not None or user is not None,
                           intent.language if intent is not None else None, user)
    return await start_ivr(call, decision, intent, user)


async def resume_call(call: Call) -> Phase | None:
    """Take over a call the engine was driving before it (re)connected."""
    cfg, cid = call.config, call.channel_id
    state = await read_state(call.ari, cid)
    stopped = await stop_stale(call.ari, cid, state)
    kind, target, _ = stasis_args(call)
    entry: EntryDecision | None = None
    if state.app:
        entry = route_app(cfg.routing, state.app, state.language or None)
    elif kind == "pstn":
        entry = route_pstn(cfg.routing, target, call.start.channel.caller_number)
        if entry.via == "app-fallback":
            entry = None  # its token was being read: that cannot be taken over
    users: Any = cfg.users
    dest = state.destination
    if dest is not None and dest.kind == "user" and dest.target not in users:
        found = await for_call(cfg, getattr(call.services.store, "users", None), dest.target,
                               channel=cid, spawn=call.spawn)  # a database user?
        users = {dest.target: found} if found is not None else users
    plan = plan_resume(cfg.tree, state, users,
                       can_restart=entry is not None and entry.entry is not None)
    log.warning("call %s taken over (%s): %s — %s%s", cid, " ".join(call.start.args),
                plan.how, plan.reason,
                f"; stopped {stopped} stale playback(s)" if stopped else "")
    if plan.how == "fallback":
        await call.rescue()
        return None
    language = state.language or (entry.language if entry else cfg.routing.default_language)
    label = state.entry or (entry.label if entry else "")
    app = state.app or (entry.app if entry else None)
    custom = await _custom_data(call)
    now = call.clock()
    if plan.how == "restart":
        assert entry is not None and entry.entry is not None
        rt = call.new_runtime(entry.entry.menu, entry.language, entry.label, entry.app)
        rt.after_takeover(state.seq)
        actions = rt.start(now)
        root = cfg.tree.menus[entry.entry.menu].root
    elif plan.how == "menu":
        rt = call.new_runtime(plan.menu, language, label, app)
        rt.after_takeover(state.seq)
        actions = rt.resume(plan.menu, list(plan.path), now)
        root = cfg.tree.menus[plan.menu].root
    else:
        assert plan.destination is not None
        rt = call.new_runtime("", language, label, app)
        rt.after_takeover(state.seq)
        actions = rt.start_at(plan.destination, now)
        root = cfg.tree.menus[state.path[0]].root if state.path and \
            state.path[0] in cfg.tree.menus else ""
    call.register(label, "taken-over", app, root, language, custom, state.user or None)
    ivr = IvrPhase(call, rt)
    return await ivr.execute(actions) or ivr


async def _custom_data(call: Call) -> dict[str, str]:
    """An app call's custom data, from the intent its token matched."""
    store: Any = call.services.store
    if store is None:
        return {}
    try:
        intent = await _db_wait(call, "custom-data", store.intents.for_channel(call.channel_id),
                                then="the call goes on without its app's custom data")
    except CallerWaitFailed:
        return {}  # the caller goes on; agents miss the app's data for this call
    return dict(intent.custom_data) if intent is not None else {}
