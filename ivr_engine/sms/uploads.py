"""Uploads: the spool CSV and the do-not-contact CSV, streamed line by line from a file or an
HTTP body (100 000 lines never sit in memory: rows go to the database in chunks of 1 000).
Everything happens in one transaction: any bad line and the transaction is rolled back, so
nothing is imported, and the answer lists every bad line with its reason (the first
``MAX_LISTED``; the count is always exact)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from .csvrows import DNC_COLUMNS, SPOOL_COLUMNS, RowError, dnc_line, is_header, spool_line
from .repo import SmsRepo
from .spool import provider_spec

CHUNK = 1000
MAX_LISTED = 10_000


@dataclass
class UploadResult:
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)
    bad_lines: int = 0

    @property
    def ok(self) -> bool:
        return self.bad_lines == 0

    def add(self, err: RowError) -> None:
        self.bad_lines += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append(err)


class _Rejected(Exception):
    pass


async def _lines(chunks: AsyncIterator[bytes], result: UploadResult,
                 columns: tuple[str, ...]) -> AsyncIterator[tuple[int, str]]:
    """Numbered text lines; a line that is not UTF-8 is a bad line; the header is skipped."""
    n = 0
    async for raw in chunks:
        n += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.add(RowError(n, f"not UTF-8 (byte {exc.start + 1})"))
            continue
        if n == 1:
            text = text.lstrip("\ufeff")
            if is_header(text, columns):
                continue
        yield n, text


async def import_spool(repo: SmsRepo, sms: Any, chunks: AsyncIterator[bytes],
                       now: dt.datetime) -> UploadResult:
    """``sms`` is the config's SmsSettings; ``chunks`` yields the file's lines as bytes."""
    result = UploadResult()

    def dialer_of(campaign: str) -> str:
        return sms.campaigns[campaign].dialer

    def encoding_of(dialer: str) -> str:
        try:
            return provider_spec(sms, sms.dialers[dialer].provider).encoding
        except LookupError:  # no provider at all: the dialer will say so
            return "auto"

    try:
        async with repo.transaction() as s:
            batch: list[dict[str, Any]] = []
            async for n, text in _lines(chunks, result, SPOOL_COLUMNS):
                row = spool_line(n, text, campaigns=sms.campaigns, dialer_of=dialer_of,
                                 encoding_of=encoding_of, region=sms.default_region, now=now)
                if isinstance(row, RowError):
                    result.add(row)
                    batch.clear()
                elif result.ok:
                    batch.append(row)
                    if len(batch) >= CHUNK:
                        await repo.enqueue(batch, s)
                        result.imported += len(batch)
                        batch.clear()
            if not result.ok:
                raise _Rejected
            await repo.enqueue(batch, s)
            result.imported += len(batch)
    except _Rejected:
        result.imported = 0
    return result


async def import_dnc(repo: SmsRepo, sms: Any, chunks: AsyncIterator[bytes]) -> UploadResult:
    result = UploadResult()
    try:
        async with repo.transaction() as s:
            batch: list[tuple[str, str]] = []
            async for n, text in _lines(chunks, result, DNC_COLUMNS):
                pair = dnc_line(n, text, campaigns=sms.campaigns, region=sms.default_region)
                if isinstance(pair, RowError):
                    result.add(pair)
                    batch.clear()
                elif result.ok:
                    batch.append(pair)
                    if len(batch) >= CHUNK:
                        result.imported += await repo.dnc_add(batch, s)
                        batch.clear()
            if not result.ok:
                raise _Rejected
            result.imported += await repo.dnc_add(batch, s)
    except _Rejected:
        result.imported = 0
    return result


async def file_lines(path: str) -> AsyncIterator[bytes]:
    """A file's lines as bytes, read one at a time (the CLI's uploads)."""
    with open(path, "rb") as f:
        for line in f:
            yield line
