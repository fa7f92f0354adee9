"""An agent in one of the sandbox's app_queue queues for a block, over our AMI client:

    async with queue_member(ami, "livedata", "Local/a1@livedata-agent", MemberName="a1"):
        ...                      # the agent answers the queue's callers

AMI ``QueueAdd`` (with ``fields``: MemberName, Paused, …) on the way in; ``QueueRemove`` on
the way out, whatever happened in the block (a member already gone is no error).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ivr_engine.ami import AmiClient, AmiError


@asynccontextmanager
async def queue_member(ami: AmiClient, queue: str, interface: str,
                       **fields: Any) -> AsyncIterator[None]:
    await ami.action({"Action": "QueueAdd", "Queue": queue, "Interface": interface, **fields})
    try:
        yield
    finally:
        try:
            await ami.action({"Action": "QueueRemove", "Queue": queue, "Interface": interface})
        except AmiError:
            pass
