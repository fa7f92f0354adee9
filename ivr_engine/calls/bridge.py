"""The bridged phase: the caller talks to a user's device in a bridge the engine made.

Asterisk keeps the bridge without the engine; what the engine adds is that whoever hangs up
ends the other side too. An engine that takes the call over after a crash starts here.
"""

from __future__ import annotations

import logging

from ..ari import AriError, ChannelDestroyed, StasisEnd
from .phase import Call, Phase, TransferRequest


log = logging.getLogger("ivr_engine.calls")


class BridgePhase:
    def __init__(self, call: Call, leg: str):
        self.call, self.leg = call, leg

    @property
    def bridge(self) -> str:
        return f"{self.call.channel_id}-bridge"

    async def handle(self, ev: object) -> Phase | None:
        if isinstance(ev, TransferRequest):
            ev.settle("bridged")  # a conversation: the engine does not move it
            return None
        if isinstance(ev, (StasisEnd, ChannelDestroyed)) and ev.channel_id == self.leg:
            log.info("call %s: %s hung up; ending the call", self.call.channel_id, self.leg)
            await self.call.ari.hangup(self.call.channel_id)
        return None

    async def caller_left(self) -> None:
        call = self.call
        call.detach(self.leg)
        for step in (call.ari.hangup(self.leg), call.ari.destroy_bridge(self.bridge)):
            try:
                await step
            except AriError:
                pass
