"""How a call enters the IVR: routing a new call, reading an app's fallback token, or taking
over a call another engine process was driving.

``Stasis(ivr-engine,pstn,<DID>)`` is routed at once (routing/entry.py), except on a mobile
app's fallback number, where the call is answered and the :class:`TokenPhase` reads the
``<token>#`` the app dials after the number; ``Stasis(ivr-engine,app,<app>,<token>)`` (VoIP
from inside the app) carries its token. A call found in the application after a reconnect,
or back from the dialplan's watchdog (``resume``), resumes from the variables on its channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .. import metrics
from ..apps.guard import GuessLimits
from ..ari import ChannelDtmfReceived
from ..ivr.resume import plan_resume
from ..routing.entry import AppEntry, EntryDecision, after_token, route_app, route_pstn
from .ivr import IvrPhase
from .phase import Call, Phase, TokenTimeout, TransferRequest
from .takeover import read_state, stop_stale


log = logging.getLogger("ivr_engine.calls")


def stasis_args(call: Call) -> tuple[str, str, str]:
    """``(pstn, <DID>, "")``, ``(app, <app>, <token>)`` or ``(resume, "", "")``."""
    args = call.start.args
    kind = args[0] if args else "pstn"
    target = args[1] if len(args) > 1 else call.start.channel.exten
    extra = args[2] if len(args) > 2 else ""
    return kind, target, extra


async def new_call(call: Call) -> Phase | None:
    table = call.config.routing
    kind, target, extra = stasis_args(call)
    caller = call.start.channel.caller_number
    if kind == "app":  # VoIP from inside the app: the SDK passed its token in a header
        decision = route_app(table, target)
        intent = None
        if decision.app and extra and call.services.store is not None:
            intent = await call.services.store.intents.consume_token(
                decision.app, extra, call.clock(), call.channel_id)
        if intent is not None:
            decision = route_app(table, target, intent.language)
        return await call.enter(decision, intent)
    decision = route_pstn(table, target, caller)
    if decision.via != "app-fallback":
        return await call.enter(decision, None)
    assert decision.app is not None
    app = table.apps[decision.app]
    if call.services.store is None:  # nothing to match against: an outside caller
        return await call.enter(after_token(table, decision, False), None)
    if app.match == "caller":
        return await _matched(call, decision, app, "")
    await call.ari.answer(call.channel_id)
    return TokenPhase(call, decision, app)


class TokenPhase:
    """Post-dial DTMF ``<token>#``: whatever arrived when ``#`` or the deadline comes."""

    def __init__(self, call: Call, decision: EntryDecision, app: AppEntry):
        self.call, self.decision, self.app = call, decision, app
        self.got = ""
        self._timer = call.spawn(self._deadline(app.token_wait_seconds))

    async def _deadline(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.call.post(TokenTimeout())

    async def handle(self, ev: object) -> Phase | None:
        if isinstance(ev, ChannelDtmfReceived) and ev.channel_id == self.call.channel_id:
            if ev.digit != "#":
                self.got += ev.digit
            if ev.digit == "#" or len(self.got) > self.app.token_digits + 4:
                return await self._done()
        elif isinstance(ev, TokenTimeout):
            return await self._done()
        elif isinstance(ev, TransferRequest):
            ev.settle("token")  # not in the IVR yet
        return None

    async def caller_left(self) -> None:
        self._timer.cancel()

    async def _done(self) -> Phase | None:
        self._timer.cancel()
        token = self.got if self.got.isdigit() else ""
        return await _matched(self.call, self.decision, self.app, token)


async def _matched(call: Call, decision: EntryDecision, app: AppEntry,
                   token: str) -> Phase | None:
    """Match the token (or, if the app allows, the caller) to an intent of the app.

    Wrong tokens are counted (per caller number and per app); past a limit the call is treated
    as outside the app without looking at its token (see apps/guard.py)."""
    store: Any = call.services.store
    caller = call.start.channel.caller_number
    guessing = call.config.model.apps[app.app].fallback.guessing
    limits = GuessLimits(guessing.per_caller, guessing.per_app, guessing.window_seconds)
    guard, now = call.services.token_guard, time.monotonic()
    intent = None
    refused = guard.check(app.app, caller, limits, now)
    if refused is not None:
        metrics.TOKEN_GUESSING_REFUSED.labels(app.app).inc()
        log.warning("call %s on app %r's fallback number treated as outside the app: %s",
                    call.channel_id, app.app, refused)
    else:
        if token:
            intent = await store.intents.consume_token(app.app, token, call.clock(),
                                                       call.channel_id)
            if intent is None:
                guard.failed(app.app, caller, now)
                log.info("call %s: wrong token for app %r from %r", call.channel_id, app.app,
                         caller)
        if intent is None and app.match != "token":
            intent = await store.intents.consume_by_caller(app.app, caller, call.clock(),
                                                           call.channel_id)
    decision = after_token(call.config.routing, decision, intent is not None,
                           intent.language if intent is not None else None)
    return await call.enter(decision, intent)


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
    plan = plan_resume(cfg.tree, state, cfg.users,
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
    call.register(label, "taken-over", app, root, language, custom)
    ivr = IvrPhase(call, rt)
    return await ivr.execute(actions) or ivr


async def _custom_data(call: Call) -> dict[str, str]:
    """An app call's custom data, from the intent its token matched."""
    store: Any = call.services.store
    if store is None:
        return {}
    intent = await store.intents.for_channel(call.channel_id)
    return dict(intent.custom_data) if intent is not None else {}
