"""Inbound messages: stored once per provider message id, linked to the send they answer, an
opt-out keyword put on the do-not-contact list — all in the transaction that stores the
message, so a provider's retry finds it stored (and changes nothing) and a crash leaves
either all of it or none (the provider retries). Then the webhook's state: claimed with a
lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: several engines never deliver one message
at once), delivered, or retried later.

A long message that comes in parts (Vonage) keeps each part (unique per provider message id,
so a retried part changes nothing) until the last one makes it whole; on PostgreSQL the
parts of one message take turns (a transaction-scoped advisory lock), so two last parts
arriving together cannot both miss the other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .inbound import Received, Stop, assemble, stop_word
from .models import (
    HOOK_DELIVERED,
    HOOK_FAILED,
    HOOK_NONE,
    HOOK_PENDING,
    SENT,
    InboundMessage,
    InboundPart,
    SpoolRow,
)
from .repo import add_dnc

M = InboundMessage.__table__
P = InboundPart.__table__
S = SpoolRow.__table__
# the parts of one message arrive within this (Vonage retries for 24 hours); an older part
# with the same reference belongs to a message that never became whole
PART_WINDOW = dt.timedelta(hours=25)


@dataclass(frozen=True, slots=True)
class Policy:
    """What the configuration says about a message as it is stored."""

    stop_words: Any  # language → keywords
    stop_scope: str  # "all" or "campaign"
    reply_providers: frozenset[str]  # whose sends a reply answers
    since: dt.datetime  # the reply window's start
    webhook: bool  # a webhook is configured: the message waits for it


@dataclass(frozen=True, slots=True)
class Stored:
    id: int | None  # None: a part, kept until its message is whole
    duplicate: bool = False  # the provider sent it before: nothing changed
    stop: Stop | None = None
    dnc_added: bool = False
    campaign: str | None = None
    reply_to: int | None = None


def _group_key(*parts: str) -> int:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class InboundRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], dialect: str,
                 writer: Any):
        self._sessions = sessions
        self._dialect = dialect
        self._writer = writer  # the SMS repository's: one SQLite writer at a time

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert(table) if self._dialect == "postgresql"
                else sqlite.insert(table))

    # ----------------------------------------------------------------- storing

    async def receive(self, provider: str, msg: Received, policy: Policy,
                      now: dt.datetime) -> Stored:
        async with self._writer, self._sessions() as s, s.begin():
            if msg.part is not None:
                whole = await self._part(s, provider, msg, now)
                if not isinstance(whole, Received):
                    return whole
                msg = whole
            known = (await s.execute(select(M.c.id).where(
                M.c.provider == provider, M.c.provider_message_id == msg.message_id))).first()
            if known is not None:
                return Stored(known.id, duplicate=True)
            reply_to, campaign = await self._replied(s, msg, policy, now)
            stop = stop_word(msg.text, policy.stop_words) if msg.e164 else None
            row = {"provider": provider, "provider_message_id": msg.message_id,
                   "sender": msg.sender, "recipient": msg.recipient, "text": msg.text,
                   "received_at": now, "reply_to": reply_to, "campaign": campaign,
                   "stop_word": stop.word if stop else None,
                   "stop_language": stop.language if stop else None,
                   "event_id": uuid.uuid4().hex,
                   "hook_state": HOOK_PENDING if policy.webhook else HOOK_NONE,
                   "hook_attempts": 0, "hook_next_at": now if policy.webhook else None}
            rid = (await s.execute(self._insert(M).values(**row).on_conflict_do_nothing(
                index_elements=["provider", "provider_message_id"]).returning(M.c.id))
                ).scalar()
            if rid is None:  # the same message stored meanwhile by another request
                return Stored(None, duplicate=True)
            if isinstance(msg, _Whole):  # its parts are done with
                await s.execute(update(P).where(
                    P.c.provider == provider, P.c.inbound_id.is_(None),
                    P.c.message_id.in_(msg.ids)).values(inbound_id=rid))
            added = False
            if stop is not None:
                scope = campaign if policy.stop_scope == "campaign" and campaign else ""
                reason = (f"opt-out by SMS: {stop.word} ({stop.language}) from {msg.sender} "
                          f"to {msg.recipient}, inbound message {rid}")[:200]
                added = bool(await add_dnc(s, [(msg.sender, scope)], reason=reason, now=now))
            return Stored(rid, stop=stop, dnc_added=added, campaign=campaign,
                          reply_to=reply_to)

    async def _part(self, s: AsyncSession, provider: str, msg: Received,
                    now: dt.datetime) -> Stored | Received:
        """Keep one part; the whole message once every part is here (its id: part 1's),
        else what to answer."""
        part = msg.part
        assert part is not None
        if self._dialect == "postgresql":
            await s.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                            {"k": _group_key(provider, msg.sender, part.ref)})
        new = (await s.execute(self._insert(P).values(
            provider=provider, message_id=msg.message_id, sender=msg.sender,
            recipient=msg.recipient, ref=part.ref, total=part.total, part=part.number,
            text=msg.text, received_at=now).on_conflict_do_nothing(
            index_elements=["provider", "message_id"]).returning(P.c.id))).scalar()
        if new is None:
            return Stored(None, duplicate=True)
        rows = (await s.execute(select(P.c.part, P.c.text, P.c.message_id).where(
            P.c.provider == provider, P.c.sender == msg.sender, P.c.ref == part.ref,
            P.c.total == part.total, P.c.inbound_id.is_(None),
            P.c.received_at >= now - PART_WINDOW).order_by(P.c.id))).all()
        # a part number twice: a part of an older message with the same reference that never
        # became whole; the newest is this message's
        got = {r.part: r for r in rows}
        if set(got) != set(range(1, part.total + 1)):
            return Stored(None)
        ids = tuple(got[n].message_id for n in sorted(got))
        return _Whole(ids[0], msg.sender, msg.recipient,
                      assemble((n, got[n].text) for n in got), None, ids)

    async def _replied(self, s: AsyncSession, msg: Received, policy: Policy,
                       now: dt.datetime) -> tuple[int | None, str | None]:
        """The newest message sent to the sender within the window by a provider whose
        sends this message answers: (its id, its campaign)."""
        if not msg.e164 or not policy.reply_providers:
            return None, None
        row = (await s.execute(
            select(S.c.id, S.c.campaign)
            .where(S.c.destination == msg.sender, S.c.state == SENT,
                   S.c.provider.in_(sorted(policy.reply_providers)),
                   S.c.done_at >= policy.since, S.c.done_at <= now)
            .order_by(S.c.done_at.desc(), S.c.id.desc()).limit(1))).first()
        return (row.id, row.campaign) if row is not None else (None, None)

    # ----------------------------------------------------------------- reading

    async def get(self, rid: int) -> Any:
        async with self._sessions() as s:
            return (await s.execute(select(M).where(M.c.id == rid))).first()

    async def search(self, f: Any, *, after: int = 0, limit: int = 100) -> list[Any]:
        """Messages matching ``f`` (``search.Filters``: its ``destination`` is the sender
        here, the customer's number either way) received in its range with an id above
        ``after``, oldest first by id, at most ``limit``."""
        q = select(M).where(M.c.received_at >= f.start, M.c.received_at < f.end,
                            M.c.id > after)
        if f.campaign is not None:
            q = q.where(or_(M.c.campaign.is_(None), M.c.campaign == "") if f.campaign == ""
                        else M.c.campaign == f.campaign)
        if f.destination is not None:
            q = q.where(M.c.sender == f.destination)
        if f.provider is not None:
            q = q.where(M.c.provider == f.provider)
        async with self._sessions() as s:
            return list((await s.execute(q.order_by(M.c.id).limit(limit))).all())

    async def waiting(self) -> int:
        """Messages whose webhook is not delivered yet."""
        async with self._sessions() as s:
            return (await s.execute(select(func.count()).select_from(M).where(
                M.c.hook_state == HOOK_PENDING))).scalar_one()

    # ----------------------------------------------------------------- the webhook

    async def claim_hooks(self, now: dt.datetime, until: dt.datetime,
                          limit: int) -> list[Any]:
        """Up to ``limit`` messages whose webhook is due, oldest first, leased until
        ``until`` (their next try, should this engine die while delivering them)."""
        async with self._sessions() as s:  # nothing due costs a read, not a write lock
            if (await s.execute(select(M.c.id).where(
                    M.c.hook_state == HOOK_PENDING, M.c.hook_next_at <= now).limit(1))
                    ).first() is None:
                return []
        # a MATERIALIZED CTE runs once, whatever the plan (see SmsRepo.claim)
        pick = (select(M.c.id).where(M.c.hook_state == HOOK_PENDING, M.c.hook_next_at <= now)
                .order_by(M.c.id).limit(limit).with_for_update(skip_locked=True)
                .cte("picked").prefix_with("MATERIALIZED"))
        async with self._writer, self._sessions() as s, s.begin():
            rows = (await s.execute(update(M).where(M.c.id.in_(select(pick.c.id)),
                                                    M.c.hook_state == HOOK_PENDING)
                                    .values(hook_next_at=until).returning(*M.c))).all()
        return sorted(rows, key=lambda r: r.id)

    async def hook_done(self, rid: int, now: dt.datetime) -> None:
        await self._hook(rid, hook_state=HOOK_DELIVERED, hook_done_at=now, hook_next_at=None,
                         hook_error=None, hook_attempts=M.c.hook_attempts + 1)

    async def hook_failed(self, rid: int, error: str, next_at: dt.datetime | None,
                          now: dt.datetime) -> None:
        """An attempt failed: tried again at ``next_at``, or given up when it is None."""
        values: dict[str, Any] = {"hook_error": error[:200],
                                  "hook_attempts": M.c.hook_attempts + 1}
        if next_at is None:
            values.update(hook_state=HOOK_FAILED, hook_next_at=None, hook_done_at=now)
        else:
            values["hook_next_at"] = next_at
        await self._hook(rid, **values)

    async def hook_release(self, ids: Iterable[int], next_at: dt.datetime) -> None:
        """Claimed but not tried (the receiver failed an earlier one): due at ``next_at``."""
        ids = list(ids)
        if ids:
            async with self._writer, self._sessions() as s, s.begin():
                await s.execute(update(M).where(M.c.id.in_(ids), M.c.hook_state == HOOK_PENDING)
                                .values(hook_next_at=next_at))

    async def _hook(self, rid: int, **values: Any) -> None:
        async with self._writer, self._sessions() as s, s.begin():
            await s.execute(update(M).where(M.c.id == rid, M.c.hook_state == HOOK_PENDING)
                            .values(**values))


@dataclass(frozen=True, slots=True)
class _Whole(Received):
    """A message made whole from its parts (their provider ids, part 1's first)."""

    ids: tuple[str, ...] = ()
