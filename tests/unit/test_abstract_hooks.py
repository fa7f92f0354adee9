"""The base classes' hooks a feature must supply are abstract: a subclass that forgets one
fails when it is built, not at its first line or first send."""

from __future__ import annotations

import inspect

import pytest

from ivr_engine.csvspool import LineResult, LineSpool
from ivr_engine.sms.csvspool import CsvSpool
from ivr_engine.sms.providers import Provider
from ivr_engine.sms.urlproviders import TYPES
from ivr_engine.users.csvspool import UserCsvSpool


class _Limits:
    max_bytes = 1000
    max_rows = 10
    max_line_bytes = 100


def test_a_spool_without_its_check_cannot_be_built():
    class NoCheck(LineSpool):
        pass

    with pytest.raises(TypeError, match="abstract method '?_check"):
        NoCheck(_Limits(), LineResult(), error=ValueError, settings="x")


def test_a_spool_with_its_check_is_built_and_reads_lines():
    class Upper(LineSpool):
        def _check(self, n: int, text: str):
            return text.upper()

    sp = Upper(_Limits(), LineResult(), error=ValueError, settings="x")
    try:
        sp.feed(b"a\nb\n")
        assert sp.finish().rows == 2
        assert list(sp.batches()) == [["A", "B"]]
    finally:
        sp.close()


def test_a_provider_without_its_send_cannot_be_built():
    class NoSend(Provider):
        pass

    with pytest.raises(TypeError, match="abstract method '?_send"):
        NoSend(None, None)


def test_every_shipped_subclass_supplies_its_hooks():
    for cls in (CsvSpool, UserCsvSpool, *TYPES.values()):
        assert not inspect.isabstract(cls), cls.__name__
    assert inspect.isabstract(LineSpool) and inspect.isabstract(Provider)
