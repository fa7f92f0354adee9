"""Uploads: the spool CSV and the do-not-contact CSV, from an HTTP body or a file.

Two steps, so that nothing a client sends holds the database, the memory or the event loop:

1. the body is spooled to an anonymous temporary file (``csvspool.CsvSpool``, in a worker
   thread), every line checked on the way; past ``sms.uploads`` limits it is refused (413);
   any bad line: nothing is imported and the answer lists every bad line with its reason
   (the first ``MAX_LISTED``; the count is always exact);
2. a good file is imported in ONE transaction, a batch of rows per ``executemany``: all or
   nothing, and the write lock is held only for the inserts, never while a client sends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from typing import Any, AsyncIterator

from aiohttp import web

from ..api.problems import PROBLEM, Problem
from ..api.schemas import reply
from .csvspool import MAX_LISTED, CsvSpool, TooLarge, UploadResult
from .repo import SmsRepo
from .schemas import LineError, UploadAccepted, UploadProblem

__all__ = ["MAX_LISTED", "CSV_TYPES", "TooLarge", "UploadResult", "http_upload", "receive"]

log = logging.getLogger("ivr_engine.sms")
CSV_TYPES = ("text/csv", "text/plain")
READ_BYTES = 256 * 1024  # what the HTTP body is read by


async def receive(kind: str, repo: SmsRepo, sms: Any, chunks: AsyncIterator[bytes],
                  now: dt.datetime) -> UploadResult:
    """Check and spool ``chunks`` (the file's bytes), then import it if every line is good.
    ``kind`` is ``spool`` or ``dnc``; ``sms`` the config's SmsSettings. TooLarge past the
    limits."""
    spool = CsvSpool(kind, sms, now)
    try:
        async for chunk in chunks:
            await asyncio.to_thread(spool.feed, chunk)
        result = await asyncio.to_thread(spool.finish)
        if result.ok:
            await asyncio.to_thread(spool.rewind)
            batches = _batches(spool)
            t0 = time.monotonic()
            result.imported = await (repo.import_spool(batches) if kind == "spool"
                                     else repo.import_dnc(batches))
            log.info("sms %s upload: %d rows checked, %d imported in one transaction of "
                     "%.2f s", kind, result.rows, result.imported, time.monotonic() - t0)
        return result
    finally:
        await asyncio.to_thread(spool.close)  # frees the file's blocks: a disk operation


async def _batches(spool: CsvSpool) -> AsyncIterator[list[Any]]:
    while (batch := await asyncio.to_thread(spool.next_batch)) is not None:
        yield batch


# --------------------------------------------------------------------- HTTP


def _refused(request: web.Request, result: UploadResult) -> web.Response:
    doc = UploadProblem(title="Upload refused", status=422, instance=request.path,
                        detail=f"{result.bad_lines} bad line(s); nothing was imported",
                        bad_lines=result.bad_lines,
                        errors=[LineError(line=e.line, reason=e.reason) for e in result.errors])
    return web.Response(status=422, content_type=PROBLEM,
                        text=json.dumps(doc.model_dump(exclude_none=True)))


async def http_upload(request: web.Request, kind: str, repo: SmsRepo, sms: Any,
                      now: dt.datetime) -> web.Response:
    """An upload route's answer: 200 with the count imported, 413 past the limits (a
    declared Content-Length is refused before reading), 415 for another media type, 422
    listing the bad lines."""
    if request.content_type not in CSV_TYPES:
        raise Problem(415, "Unsupported Media Type", "send the file as text/csv")
    limit = sms.uploads.max_bytes
    if (request.content_length or 0) > limit:
        raise Problem(413, "Payload Too Large", f"the file is larger than {limit} bytes "
                      "(sms.uploads.max_bytes)")
    try:
        result = await receive(kind, repo, sms, request.content.iter_chunked(READ_BYTES), now)
    except TooLarge as exc:
        raise Problem(413, "Payload Too Large", f"{exc}; nothing was imported") from None
    if not result.ok:
        return _refused(request, result)
    return reply(UploadAccepted(imported=result.imported))
