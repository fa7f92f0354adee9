"""The SMS workers: one bulk lane per configured dialer and the single lane, in one
TaskGroup (``SmsService.run``), in `ivr-engine sms dialer` or inside the engine.

A batch: ``claim`` (one transaction: up to ``batch`` rows to SENDING, do-not-contact ones to
BLOCKED), send, ``record`` the outcomes (another transaction). With ``spacing_ms`` the sends
go one after the other, each outcome recorded as soon as it is known; at 0 ms the batch's
sends go out together and are recorded together. The single lane (SendSMS, CLI, app links)
is polled every ``sms.poll_seconds`` (and woken at once by the engine's own API): it never
waits for a bulk batch, a dialer's spacing or schedule, only for the provider's rate cap,
where it goes before every bulk send still waiting.

Each lane (the single lane, each dialer, the lease sweeper) is a child of a
:class:`~ivr_engine.supervisor.Supervisor`: a lane that fails (the database locked or gone)
is logged, counted, backed off and started again, without touching the other lanes — nor,
inside the engine, the calls. A lane resolves its own rows left in SENDING each time it
starts: with the outcome it already knew when it has one (the provider answered, then
recording failed: kept in memory until written, so a restart neither loses nor repeats it),
else as after a crash, below.

On start, the rows this worker left in SENDING (it was killed) are resolved before anything
else: asked of the provider by idempotency key where it can tell (Infobip), else by the
provider's ``unknown_outcome`` (``fail``: marked failed, never sent twice; ``resend``: sent
again, never lost). Rows another worker left in SENDING for longer than
``sms.lease_seconds`` are resolved the same way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import re
import socket
import time
from typing import Any, Callable

import aiohttp
from prometheus_client import Counter

from ..metrics import REGISTRY
from ..supervisor import RestartPolicy, Start, Supervisor
from .models import FAILED, OTHER, SENT, SINGLE_LANE, TO_PROCESS
from .monitor import monitor, schedule_open
from .numbers import NumberError, check_regexp, parse_channels, rotation
from .providers import Outbound, Provider, SendResult
from .repo import Claimed, SmsRepo
from .single import Outcomes
from .spool import provider_spec, single_row
from .urlproviders import make_provider

log = logging.getLogger("ivr_engine.sms")

STATE_OF = {"sent": SENT, "failed": FAILED}
OUTCOME_OF = {SENT: "sent", FAILED: "failed", TO_PROCESS: "not-sent", OTHER: "other"}
SENDS = Counter("ivr_sms_messages", "SMS send outcomes (dialers running inside the engine)",
                ["provider", "lane", "outcome"], registry=REGISTRY)
SEGMENTS = Counter("ivr_sms_segments", "SMS segments the providers accepted",
                   ["provider"], registry=REGISTRY)
IDLE_SECONDS = 1.0  # a bulk lane with nothing to do (stopped, closed, empty) looks again
BACKOFF_SECONDS = 2.0  # after a provider could not be reached


def default_worker() -> str:
    return socket.gethostname()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class SmsService:
    """The providers of the current config and the workers that use them."""

    def __init__(self, config: Callable[[], Any], repo: SmsRepo, *, worker: str | None = None,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.config = config
        self.repo = repo
        self.worker = worker or default_worker()
        self.clock = clock
        self.wake_single = asyncio.Event()
        self.outcomes = Outcomes()  # the single lane's, for SendSMS waiting in this process
        self._stopping = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._providers: dict[str, tuple[Any, Provider]] = {}
        self._regexps: dict[str, re.Pattern[str] | None] = {}
        self._rotations: dict[str, tuple[str | None, Any]] = {}
        # outcomes known but not written yet (the write failed): row id -> (lane, outcome)
        self._unrecorded: dict[int, tuple[str, dict[str, Any]]] = {}

    async def __aenter__(self) -> "SmsService":
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._http is not None:
            await self._http.close()

    # ----------------------------------------------------------------- providers

    @property
    def sms(self) -> Any:
        return self.config().model.sms

    def provider_spec(self, name: str | None) -> Any:
        return provider_spec(self.sms, name)

    def provider(self, name: str | None) -> Provider:
        spec = self.provider_spec(name)
        known = self._providers.get(spec.name)
        if known is None or known[0] is not spec:  # a reload changed it: a new adapter
            assert self._http is not None, "use SmsService as an async context manager"
            known = (spec, make_provider(spec, self._http))
            self._providers[spec.name] = known
            self._regexps[spec.name] = re.compile(spec.number_regexp) \
                if spec.number_regexp else None
        return known[1]

    def lane_provider(self, lane: str) -> str:
        if lane == SINGLE_LANE:
            return self.provider_spec(self.sms.single_provider).name
        return self.provider_spec(self.sms.dialers[lane].provider).name

    def stop(self) -> None:
        """Finish the batches in flight, claim no more: ``run`` returns once they are
        recorded (SIGTERM of the dialer process)."""
        self._stopping.set()
        self.wake_single.set()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    # ----------------------------------------------------------------- single sends, monitor

    async def enqueue_single(self, destination: str, message: str, **kw: Any
                             ) -> dict[str, Any]:
        """Spool one message in the single lane (see ``spool.single_row`` for what is
        refused) and wake the in-process single lane; the row's columns, with its id."""
        row = single_row(self.sms, self.clock(), destination, message, **kw)
        row["id"] = await self.repo.enqueue_one(row)
        self.wake_single.set()
        return row

    async def monitor(self) -> dict[str, Any]:
        return await monitor(self.config(), self.repo, self.clock())

    # ----------------------------------------------------------------- sending

    async def _send(self, row: Claimed, prov: Provider, channel: int | None,
                    single: bool, mark: bool) -> dict[str, Any]:
        """One message: the provider's number rule, its rate cap, then (``mark``) the row
        marked attempted — the line between "never left" and "may have left" that recovery
        reads — then the request and its outcome."""
        done = {"rid": row.id, "provider": prov.name, "channel": channel}
        try:
            check_regexp(row.destination, self._regexps.get(prov.name), prov.name,
                         prov.spec.match_on, self.sms.default_region)
        except NumberError as exc:
            return {**done, "state": OTHER, "answer": str(exc), "done_at": self.clock()}
        await prov.cap.take(row.segments, single=single)
        if mark:
            try:
                await self.repo.mark_attempted([row.id], self.clock())
            except Exception as exc:  # noqa: BLE001 - not handed over: it waits, unsent
                log.warning("sms %d not sent: the spool could not be written: %s", row.id, exc)
                return {**done, "state": TO_PROCESS, "answer": None, "done_at": None}
        res = await prov.send(Outbound(row.idem_key, row.destination, row.message,
                                       row.encoding, row.segments, channel))
        if res.outcome == "unknown":
            res = await self._settle(prov, row.idem_key, res)
        SENDS.labels(prov.name, "single" if single else "bulk", res.outcome).inc()
        if res.outcome == "sent":
            SEGMENTS.labels(prov.name).inc(row.segments)
        if res.outcome == "not-sent":
            return {**done, "state": TO_PROCESS, "answer": res.answer, "done_at": None}
        log.debug("sms %d to provider %s: %s %s", row.id, prov.name, res.outcome, res.answer)
        return {**done, "state": STATE_OF[res.outcome], "message_id": res.message_id,
                "answer": res.answer, "done_at": self.clock()}

    @staticmethod
    def _sent_at_once(prov: Provider, spacing_ms: int) -> bool:
        """A batch that leaves the moment it is claimed (no spacing, no rate cap)."""
        return spacing_ms == 0 and prov.spec.rate is None

    async def _settle(self, prov: Provider, key: str, res: SendResult) -> SendResult:
        """A send whose outcome is unknown: the provider's word when it can tell, else its
        ``unknown_outcome`` policy (``resend`` → not-sent, ``fail`` → failed)."""
        found = await prov.lookup(key)
        if found is not None:
            return found
        if prov.spec.unknown_outcome == "resend":
            return SendResult("not-sent", f"outcome unknown ({res.answer}); sent again "
                              "(unknown_outcome: resend)")
        return SendResult("failed", f"outcome unknown ({res.answer}); not sent again "
                          "(unknown_outcome: fail)")

    async def _batch(self, rows: list[Claimed], prov: Provider, spacing_ms: int,
                     channels: Any, single: bool) -> int:
        """Send ``rows``; the number the provider could not be reached for (requeued)."""
        if spacing_ms == 0 or single:
            # without a rate cap the whole batch leaves at once: claimed as attempted
            capped = prov.spec.rate is not None
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._send(r, prov, next(channels), single, capped))
                         for r in rows]
            outcomes = [t.result() for t in tasks]
            await self._record(rows, outcomes)
            return sum(o["state"] == TO_PROCESS for o in outcomes)
        requeued = 0
        touched = time.monotonic()
        for i, row in enumerate(rows):
            if i:
                await self._pause(spacing_ms / 1000)
            if time.monotonic() - touched > self.sms.lease_seconds / 3:
                await self.repo.touch([r.id for r in rows[i:]], self.clock())  # still ours
                touched = time.monotonic()
            if self._stopping.is_set():  # stopping: the rest of the batch was never sent
                await self._record(rows, [{"rid": r.id, "state": TO_PROCESS,
                                           "provider": r.provider, "answer": None,
                                           "done_at": None} for r in rows[i:]])
                break
            out = await self._send(row, prov, next(channels), single, True)
            await self._record(rows, [out])
            requeued += out["state"] == TO_PROCESS
        return requeued

    async def _record(self, rows: list[Claimed], outcomes: list[dict[str, Any]]) -> None:
        """Write outcomes; until written they are kept, so the lane's restart writes them
        instead of guessing (``recover``)."""
        lanes = {r.id: r.lane for r in rows}
        for o in outcomes:
            self._unrecorded[o["rid"]] = (lanes.get(o["rid"], ""), o)
        await self.repo.record(outcomes)
        for o in outcomes:
            self._unrecorded.pop(o["rid"], None)

    # ----------------------------------------------------------------- lanes

    async def run_dialer(self, name: str) -> None:
        """The dialer's bulk lane: at 0 ms spacing ``pipelines`` batches are in flight at
        once (each claimed whole, so no row is in two); with spacing, one."""
        d = self.sms.dialers.get(name)
        async with asyncio.TaskGroup() as tg:
            for i in range(d.pipelines if d is not None else 1):
                tg.create_task(self._dialer_loop(name, i), name=f"sms-dialer-{name}-{i}")

    async def _dialer_loop(self, name: str, index: int) -> None:
        while not self._stopping.is_set():
            d = self.sms.dialers.get(name)
            now = self.clock()
            if d is None or not d.enabled or (index and (d.spacing_ms or index >= d.pipelines)) \
                    or not await self.repo.dialer_running(name) or not self._open(d, now):
                await self._pause(IDLE_SECONDS)
                continue
            prov = self.provider(d.provider)
            known = self._rotations.get(name)
            if known is None or known[0] != d.dial_string:
                known = (d.dial_string, rotation(parse_channels(d.dial_string)))
                self._rotations[name] = known
            rows, _ = await self.repo.claim(name, self.worker, now, d.batch, d.dnc_check,
                                            prov.name, self._sent_at_once(prov, d.spacing_ms))
            if not rows:
                await self._pause(IDLE_SECONDS)
                continue
            if await self._batch(rows, prov, d.spacing_ms, known[1], single=False):
                await self._pause(BACKOFF_SECONDS)

    def _open(self, d: Any, now: dt.datetime) -> bool:
        return schedule_open(self.config(), d, now)

    async def single_once(self) -> int:
        """Claim and send the single lane's waiting rows (up to 50); how many were claimed.
        Each row goes to its own provider (``provider`` at enqueue), else sms.single_provider,
        else the default one."""
        rows, blocked = await self.repo.claim(SINGLE_LANE, self.worker, self.clock(), 50, True,
                                              self.lane_provider(SINGLE_LANE))
        # rows of an uncapped provider leave at once (the others are marked one by one)
        await self.repo.mark_attempted([r.id for r in rows if self.provider(r.provider)
                                        .spec.rate is None], self.clock())
        by_provider: dict[str, list[Claimed]] = {}
        for r in rows:
            by_provider.setdefault(r.provider or "", []).append(r)
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self._batch(rs, self.provider(p or None), 0,
                                                rotation(()), single=True))
                     for p, rs in by_provider.items()]
        self.outcomes.recorded([r.id for r in rows], everyone=bool(blocked))
        if sum(t.result() for t in tasks):
            await self._pause(BACKOFF_SECONDS)
        return len(rows)

    async def run_single(self) -> None:
        while not self._stopping.is_set():
            self.wake_single.clear()
            if not await self.single_once():
                try:
                    await asyncio.wait_for(self.wake_single.wait(), self.sms.poll_seconds)
                except TimeoutError:
                    pass

    # ----------------------------------------------------------------- recovery

    async def recover(self, *, worker: str | None = None, not_worker: str | None = None,
                      claimed_before: dt.datetime | None = None,
                      lanes: frozenset[str] | set[str] | None = None,
                      skip_lanes: frozenset[str] = frozenset()) -> dict[str, int]:
        """Resolve rows left in SENDING (see the module's docstring), of ``lanes`` only when
        given, never of ``skip_lanes``; counts per outcome."""
        rows = [r for r in await self.repo.in_flight(worker=worker, not_worker=not_worker,
                                                     claimed_before=claimed_before)
                if (lanes is None or r.lane in lanes) and r.lane not in skip_lanes]
        counts: dict[str, int] = {}
        outcomes = []
        known = 0
        for row in rows:
            mine = self._unrecorded.get(row.id) if worker == self.worker else None
            if mine is not None:  # its outcome was known, only not written
                outcomes.append(mine[1])
                name = OUTCOME_OF.get(mine[1]["state"], "other")
                counts[name] = counts.get(name, 0) + 1
                known += 1
                continue
            try:
                prov = self.provider(row.provider)
            except LookupError as exc:
                prov, res = None, SendResult("failed", f"outcome unknown: {exc}")
            if not row.attempted:  # claimed, never handed to the provider
                res = SendResult("not-sent", "claimed but never sent; queued again")
            elif prov is not None:
                res = await self._settle(prov, row.idem_key,
                                         SendResult("unknown", "the worker stopped mid-send"))
            counts[res.outcome] = counts.get(res.outcome, 0) + 1
            outcomes.append({"rid": row.id, "provider": row.provider,
                             "state": TO_PROCESS if res.outcome == "not-sent"
                             else STATE_OF[res.outcome], "message_id": res.message_id,
                             "answer": res.answer,
                             "done_at": None if res.outcome == "not-sent" else self.clock()})
        await self.repo.record(outcomes)
        if worker == self.worker:  # written now, or no longer in flight (written before)
            for rid, (lane, _) in list(self._unrecorded.items()):
                if (lanes is None or lane in lanes) and lane not in skip_lanes:
                    del self._unrecorded[rid]
        if rows:
            log.warning("sms: %d sends left in flight resolved (%d with their outcome known): "
                        "%s", len(rows), known, counts)
        return counts

    async def sweep(self, skip_lanes: frozenset[str] = frozenset()) -> None:
        """This worker's rows left in flight in lanes it does not run (``skip_lanes`` are
        the ones it runs: each resolves its own), then every lease period: the sends of
        workers that died and never came back."""
        await self.recover(worker=self.worker, skip_lanes=skip_lanes)
        while not self._stopping.is_set():
            await self._pause(self.sms.lease_seconds)
            if self._stopping.is_set():
                return
            lease = dt.timedelta(seconds=self.sms.lease_seconds)
            await self.recover(not_worker=self.worker, claimed_before=self.clock() - lease)

    def lanes(self, dialers: list[str] | None = None) -> dict[str, Start]:
        """The lanes to supervise, by name: the single lane, the dialers (all configured
        ones, or ``dialers``) and the lease sweeper. Each call of a lane's start resolves
        that lane's unfinished sends of this worker first, then runs it until stopped."""
        names = list(self.sms.dialers) if dialers is None else list(dialers)
        out: dict[str, Start] = {
            "sms-single": functools.partial(self._lane, SINGLE_LANE, self.run_single),
            "sms-sweep": functools.partial(self.sweep, frozenset({SINGLE_LANE, *names}))}
        for name in names:
            out[f"sms-dialer-{name}"] = functools.partial(
                self._lane, name, functools.partial(self.run_dialer, name))
        return out

    async def _lane(self, lane: str, body: Start) -> None:
        await self.recover(worker=self.worker, lanes={lane})
        await body()

    async def run(self, dialers: list[str] | None = None,
                  policy: RestartPolicy | None = None) -> None:
        """Run :meth:`lanes` under a supervisor of their own until cancelled, or until
        :meth:`stop` has let each finish."""
        supervisor = Supervisor(policy)
        for name, start in self.lanes(dialers).items():
            supervisor.add(name, start)
        await supervisor.run()
