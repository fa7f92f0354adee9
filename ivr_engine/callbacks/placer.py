"""The engine calls customers back when their turn comes: a background loop under the
supervisor (``main.py``), never on a call's path.

For each queue under ``callbacks.queues`` whose window is open, the placer claims the due
requests (compare-and-set, ``repo.py``: two engines sharing a database never place one twice)
and places each as an Asterisk call that waits in the queue like a caller::

    ARI originate Local/cb<id>@ivr-engine-callback/n  ──►  ;2 Queue(<queue>) with the
    (the engine's own HTTP connection to ARI)              customer's number as caller ID
                                                               │ an agent answers
    ;1 answered ──► ivr-engine-callback-dial: Dial(<callbacks.dial with the number>)
                     the customer's phone rings; the h extension writes Dial()'s status
                     to the global variable IVR_CB_<channel>

From the moment it is placed the callback needs no engine: Asterisk rings the agent, then the
customer, by itself. The placer checks each placement every ``poll_seconds`` (its Local
channel, ``GET /channels/<id>``) and, once it is gone, reads the outcome from the global
variable (``GET /asterisk/variable``), then removes it — an engine that died meanwhile loses
nothing: the next one (or this one restarted: same owner name) takes the placement over and
reads the same variable. All of it over the placer's own HTTP connections to ARI, never the
calls' websocket. A
customer who did not answer is tried again ``retry_seconds`` later, ``attempts`` times in all;
when no agent took the placement within ``wait_seconds`` it goes back to the queue at once
(not counted). Final states go to the webhooks (``callback.completed|failed|expired``).

Every placement runs as a task of the placer's TaskGroup; a failure of one (ARI, the
database) is logged and the placement is looked at again at the next poll; the loop itself
failing is the supervisor's business (restart with backoff), never a call's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import socket
from typing import Any, Callable

from sqlalchemy.exc import SQLAlchemyError

from .. import metrics
from ..ari import AriClient, AriError
from ..config.model_nodes import node_configs
from .announce import announce_callback
from .policy import (
    CLAIMED,
    DIALING,
    ENGINE_OWNER,
    INVALID_NUMBER,
    LOST,
    QueuePolicy,
    after_attempt,
    dialable,
    outcome_of,
)

log = logging.getLogger("ivr_engine.callbacks")

#: the global variable the dialplan leaves an attempt's outcome in: <prefix><channel id>
OUTCOME_PREFIX = "IVR_CB_"
STORE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def owner_name(ari_app: str) -> str:
    """``engine:<host>:<ARI app>``: the same after a restart (the engine takes its own
    placements back at once), different for two engines (they cannot share an ARI app)."""
    return f"{ENGINE_OWNER}{socket.gethostname()}:{ari_app}"


def _ari_settings(config: Any) -> Any:
    """The ARI the placer originates on: the engine's first node (engine.ari, or the first
    of engine.nodes — placements are not spread over nodes yet)."""
    return node_configs(config.engine)[0].ari


class Placer:
    def __init__(self, config: Callable[[], Any], repo: Any, notifier: Any,
                 clock: Callable[[], dt.datetime] = _utcnow, owner: str | None = None):
        self.config, self.repo, self.notifier = config, repo, notifier
        self.clock = clock
        self.owner = owner or owner_name(_ari_settings(config()).app)
        self.placed: dict[int, str] = {}  # callback id -> queue, while in Asterisk
        self._tg: asyncio.TaskGroup | None = None
        self._ari: AriClient | None = None

    # ---------------------------------------------------------------- the loop

    async def run(self) -> None:
        """Until cancelled (the supervisor restarts it if it fails)."""
        a = _ari_settings(self.config())
        ari = AriClient(a.url, a.username, a.password.get_secret_value(), a.app,
                        transport="http", max_connections=4)
        self.placed.clear()
        try:
            async with ari, asyncio.TaskGroup() as tg:
                self._ari, self._tg = ari, tg
                tg.create_task(self._heartbeat())
                mine = [r for r in await self.repo.stale(self.clock() + dt.timedelta(days=1))
                        if r.claimed_by == self.owner]  # ours from before a restart: at once
                for row in mine:
                    self._resume(row)
                while True:
                    await self.round()
                    await asyncio.sleep(self.config().model.callbacks.poll_seconds)
        finally:
            self._ari = self._tg = None
            metrics.CALLBACKS_PLACED.set(0)

    async def round(self) -> None:
        """One look: take over stale placements, expire, claim and place what is due."""
        cfg, now = self.config(), self.clock()
        lease = cfg.model.callbacks.lease_seconds
        for row in await self.repo.stale(now - dt.timedelta(seconds=lease)):
            if row.id in self.placed:
                continue
            taken = await self.repo.take_over(row, self.owner, now)
            if taken is not None:
                log.warning("callback #%d: taken over from %s (its lease ran out)", row.id,
                            row.claimed_by)
                self._resume(taken)
        for queue, policy in cfg.callbacks.items():
            for row in await self.repo.expire(
                    queue, now - dt.timedelta(seconds=policy.expire_after_seconds), now):
                log.info("callback #%d for %s expired", row.id, row.caller)
                announce_callback(self.notifier, row, now)
            if not policy.open(now):
                continue
            waiting = sum(1 for q in self.placed.values() if q == queue)
            for row in await self.repo.claim_due(queue, self.owner, now,
                                                 policy.max_waiting - waiting):
                self._start(row.id, queue, self._place(row, policy))

    def _start(self, callback_id: int, queue: str, work: Any) -> None:
        assert self._tg is not None
        self.placed[callback_id] = queue
        metrics.CALLBACKS_PLACED.set(len(self.placed))
        self._tg.create_task(self._guarded(callback_id, work))

    async def _guarded(self, callback_id: int, work: Any) -> None:
        """One placement's task: a failure is logged; the placement stays in the database
        (claimed or dialing, ours) and is looked at again once its lease runs out."""
        try:
            await work
        except (AriError, *STORE_ERRORS) as exc:
            log.error("callback #%d: %s; looked at again after the lease", callback_id, exc)
        finally:
            self.placed.pop(callback_id, None)
            metrics.CALLBACKS_PLACED.set(len(self.placed))

    def _resume(self, row: Any) -> None:
        """A placement this engine owns now but did not start (a restart, a take-over)."""
        policy = self.config().callbacks.get(row.queue) or QueuePolicy(row.queue)
        if row.state == DIALING and row.dial_channel:
            self._start(row.id, row.queue, self._watch(row, policy, row.dial_channel))
        elif row.state == CLAIMED:  # nothing was originated yet: back to the queue
            self._start(row.id, row.queue, self._settle(row, policy, LOST))

    async def _heartbeat(self) -> None:
        """Renew the lease of every placement in progress."""
        while True:
            lease = self.config().model.callbacks.lease_seconds
            await asyncio.sleep(lease / 3)
            if self.placed:
                try:
                    await self.repo.touch(list(self.placed), self.owner, self.clock())
                except STORE_ERRORS as exc:
                    log.warning("renewing the callbacks' lease failed: %s", exc)

    # ---------------------------------------------------------------- one placement

    async def _place(self, row: Any, policy: QueuePolicy) -> None:
        cfg = self.config().model.callbacks
        if not dialable(row.caller) or cfg.dial is None:
            log.warning("callback #%d: %r cannot be dialled", row.id, row.caller)
            await self._settle(row, policy, INVALID_NUMBER)
            return
        # letters, digits and _ only: it names a dialplan variable too
        channel = f"ivrcb_{row.id}_{row.placements + 1}_{secrets.token_hex(3)}"
        placing = await self.repo.placing(row.id, self.owner, channel, self.clock())
        if placing is None:
            return  # another owner has it now
        variables = {
            "IVR_CALLBACK_ID": channel, "IVR_CALLBACK_QUEUE": policy.queue,
            "IVR_CALLBACK_WAIT": str(policy.wait_seconds),
            "IVR_CALLBACK_DIAL": cfg.dial.format(number=row.caller),
            "IVR_CALLBACK_RING": str(policy.ring_seconds),
            "IVR_CALLBACK_NUMBER": row.caller, "IVR_LANGUAGE": row.language,
            "IVR_CALLBACK_CALLER_ID": policy.caller_id or ""}
        assert self._ari is not None
        try:
            await self._ari.originate(
                f"Local/cb{row.id}@{cfg.context}/n", context=f"{cfg.context}-dial",
                extension="s", priority=1, timeout=policy.wait_seconds + 10,
                channel_id=channel, other_channel_id=f"{channel}_2", variables=variables)
        except AriError as exc:
            log.error("callback #%d: Asterisk refused the placement: %s", row.id, exc)
            await self._settle(placing, policy, LOST)
            return
        log.info("callback #%d placed in queue %s for %s (%s)", row.id, policy.queue,
                 row.caller, channel)
        await self._watch(placing, policy, channel)

    async def _watch(self, row: Any, policy: QueuePolicy, channel: str) -> None:
        """Until the placement's Local channel is gone, then its outcome from the dialplan."""
        ari, variable = self._ari, OUTCOME_PREFIX + channel
        assert ari is not None
        while True:
            await asyncio.sleep(self.config().model.callbacks.poll_seconds)
            try:
                if await ari.get_channel(channel) is not None:
                    continue
                value = await ari.get_global(variable)
            except AriError as exc:
                log.warning("callback #%d: cannot tell how %s is doing yet: %s", row.id,
                            channel, exc)
                continue
            await self._settle(row, policy, outcome_of(value))
            try:
                await ari.unset_global(variable)
            except AriError as exc:
                log.warning("callback #%d: variable %s left: %s", row.id, variable, exc)
            return

    async def _settle(self, row: Any, policy: QueuePolicy, outcome: str) -> None:
        now = self.clock()
        nxt = after_attempt(policy, row.attempts, outcome, now, row.created_at)
        done = await self.repo.settle(row.id, self.owner, nxt, outcome, now)
        metrics.CALLBACK_ATTEMPTS.labels(outcome).inc()
        if done is None:
            log.warning("callback #%d: another engine owns it now; outcome %s not recorded",
                        row.id, outcome)
            return
        log.info("callback #%d: %s → %s (attempt %d of %d)", row.id, outcome, done.state,
                 done.attempts, policy.attempts)
        announce_callback(self.notifier, done, now)
