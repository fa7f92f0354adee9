"""The sent-message search routes (admin token): ``GET /v1/sms/messages`` (JSON, paged by
id) and ``GET /v1/sms/messages.csv`` (every matching row, streamed a page of
:data:`search.PAGE_ROWS` rows at a time: no more than one page is held in memory, and no
database connection is held between pages: :func:`stream_csv`, which the inbound messages'
CSV streams with too)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN, ApiRoutes, Reply, query_of
from ..api.schemas import reply
from .schemas import MessagePage, MessageSearchQuery
from .search import PAGE_ROWS, Filters, SearchError, csv_chunk, filters

log = logging.getLogger("ivr_engine.sms")

CSV = Reply(description="UTF-8 with BOM, CRLF, a header row; cells a spreadsheet would read "
            "as a formula are prefixed with '", media_type="text/csv",
            schema={"type": "string"})


def add_search_routes(routes: ApiRoutes, config: Callable[[], Any], repo: Any,
                      clock: Callable[[], dt.datetime], status_of: Any) -> None:
    def read(request: web.Request) -> tuple[MessageSearchQuery, Filters]:
        q: MessageSearchQuery = query_of(request)
        try:
            return q, filters(start=q.start, end=q.end, campaign=q.campaign, number=q.number,
                              status=q.status, provider=q.provider,
                              region=config().model.sms.default_region, now=clock())
        except SearchError as exc:
            raise Problem(422, "Invalid request", str(exc), field=exc.field) from None

    @routes.get("/v1/sms/messages", summary="Search the messages sent and waiting (JSON)",
                security=ADMIN, query=MessageSearchQuery, responses={200: MessagePage})
    async def search_messages(request: web.Request, who: Principal) -> web.Response:
        """Messages created in [`from`, `to`) (ISO 8601; without an offset, UTC; default:
        the last 24 hours), narrowed by `campaign` (`-`: none), `number` (any format: it is
        normalised like a send), `status` (queued, sending, sent, failed, blocked, other,
        none; several comma-separated) and `provider`; oldest first, `limit` per page (at
        most 1000), the next page from `after` = the previous `next_after`."""
        q, f = read(request)
        rows = await repo.search(f, after=q.after or 0, limit=q.limit + 1)
        page = rows[:q.limit]
        return reply(MessagePage(start=f.start, end=f.end,
                                 messages=[status_of(r) for r in page],
                                 next_after=page[-1].id if len(rows) > q.limit else None))

    @routes.get("/v1/sms/messages.csv", summary="Search the messages sent and waiting (CSV)",
                security=ADMIN, query=MessageSearchQuery, responses={200: CSV})
    async def search_messages_csv(request: web.Request, who: Principal) -> web.StreamResponse:
        """Every message the same filters find (`after` and `limit` are ignored), streamed:
        id, created_at, done_at, campaign, destination, status, provider, channel, segments,
        encoding, agent, message_id, delivery_status, answer, message. Times in UTC ISO
        8601."""
        _, f = read(request)
        return await stream_csv(request, "sms-messages.csv", "SMS messages CSV",
                                lambda after: repo.search(f, after=after, limit=PAGE_ROWS),
                                csv_chunk)


async def stream_csv(request: web.Request, filename: str, what: str,
                     page: Callable[[int], Awaitable[list[Any]]],
                     chunk: Callable[..., bytes]) -> web.StreamResponse:
    """Every row ``page(after)`` gives (:data:`search.PAGE_ROWS` at a time, by id), as the
    CSV ``chunk(rows, header=…)`` writes, streamed: the first page is read before the answer
    begins (a refusal is still a problem answer); a failure after it began cuts the
    connection (no closing chunk), so the client never takes a part for the whole file."""
    rows = await page(0)
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{filename}"'})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(chunk(rows, header=True))  # a client gone: its error ends it
    while len(rows) == PAGE_ROWS:
        try:
            rows = await page(rows[-1].id)
        except Exception as exc:  # noqa: BLE001 - the answer has begun: cut it short
            log.error("the %s failed after it began (%s): its connection is cut, so the "
                      "client never takes it for the whole file", what, type(exc).__name__)
            if request.transport is not None:
                request.transport.abort()  # no closing chunk
            return resp
        await resp.write(chunk(rows))
    await resp.write_eof()
    return resp
