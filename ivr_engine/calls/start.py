"""A routed call starts its IVR: where routing decided, or at the node an app deep-linked to
(issue 10, 19), with the app intent's custom data and the verified user it carries set on
the channel (``IVR_DATA_<key>``, ``IVR_USER``, ``IVR_VERIFIED=1``) before anything plays
(principle 8). The call is registered for agents and transfers on the way.

The last step of every way in (``entry.py``: a routed call, an app's token); a call taken
over resumes instead (``entry.resume_call``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..ivr.deeplink import start_at_node
from ..livedata.targets import TargetError, deep_link
from ..routing.entry import EntryDecision
from .ivr import IvrPhase
from .phase import Call, Phase

log = logging.getLogger("ivr_engine.calls")


async def start_ivr(call: Call, decision: EntryDecision, intent: Any,
                    user: str | None = None) -> Phase | None:
    """Start the IVR where routing decided, with the app intent the call matched and the
    verified user it carries (``IVR_USER``, ``IVR_VERIFIED=1``), if any."""
    cfg, ch = call.config, call.start.channel
    custom = dict(intent.custom_data) if intent is not None else {}
    rt = call.new_runtime(decision.entry.menu if decision.entry else "", decision.language,
                          decision.label, decision.app)
    try:  # the app asked to start at a node of its IVR or in-app tree (issue 10, 19)
        target = deep_link(cfg.tree, decision, intent, cfg.routing.apps.get(decision.app))
    except TargetError as exc:
        log.warning("call %s: deep link ignored, starting at the top: %s", call.channel_id, exc)
        target = None
    # the structure the call entered (transfers stay in it): a deep link's target's tree
    start = target.menu if target else decision.entry.menu if decision.entry else None
    root = cfg.tree.menus[start].root if start else ""
    call.register(decision.label, decision.via, decision.app, root, decision.language,
                  custom, user)
    log.info("call %s from %r (%s) → %s via %s%s", call.channel_id, ch.caller_number,
             " ".join(call.start.args), decision.label, decision.via,
             f" (verified user {user!r})" if user else "")
    variables = {f"IVR_DATA_{k}": v for k, v in custom.items()}
    if user is not None:
        variables.update(IVR_USER=user, IVR_VERIFIED="1")
    if variables:  # before anything plays (principle 8)
        await asyncio.gather(*(call.ari.set_variable(call.channel_id, k, v)
                               for k, v in variables.items()))
    now = call.clock()
    if target is not None:
        actions = start_at_node(rt, target.node_id, target.menu, target.destination, now)
    else:
        actions = rt.start(now) if decision.entry is not None else \
            rt.start_at(decision.destination, now)  # type: ignore[arg-type]
    ivr = IvrPhase(call, rt)
    return await ivr.execute(actions) or ivr
