"""A playback stop Asterisk refuses with 500 while the playback is not controllable yet (the
moment right after PlaybackStarted) is sent again; other answers are not retried. The
transport is a scripted ``AriRest.request`` (the REST methods are written against it)."""

from __future__ import annotations

import pytest

from ivr_engine.ari.errors import AriError, AriNotFound
from ivr_engine.ari.rest import AriRest


class Scripted(AriRest):
    def __init__(self, answers: list[BaseException | None]):
        self.answers = answers
        self.sent: list[tuple[str, str]] = []

    async def request(self, method, path, *, params=None, body=None, timeout=None):
        self.sent.append((method, path))
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer
        return None


def refused() -> AriError:
    return AriError(500, "DELETE", "/playbacks/p", "Could not stop playback")


async def test_a_stop_refused_while_the_playback_starts_is_sent_again():
    ari = Scripted([refused(), refused(), None])
    assert await ari.stop_playback("p 1") is True
    assert ari.sent == [("DELETE", "/playbacks/p%201")] * 3


async def test_a_playback_gone_meanwhile_is_not_found():
    ari = Scripted([refused(), AriNotFound(404, "DELETE", "/playbacks/p")])
    assert await ari.stop_playback("p") is False


async def test_refused_six_times_the_error_is_raised():
    ari = Scripted([refused() for _ in range(6)])
    with pytest.raises(AriError) as err:
        await ari.stop_playback("p")
    assert err.value.status == 500 and len(ari.sent) == 6


async def test_other_errors_are_not_retried():
    ari = Scripted([AriError(0, "DELETE", "/playbacks/p", "timeout")])
    with pytest.raises(AriError):
        await ari.stop_playback("p")
    assert len(ari.sent) == 1
