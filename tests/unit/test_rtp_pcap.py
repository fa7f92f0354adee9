"""The RTP stream the SIPp callers send: RFC 4733 events as a phone sends them."""

from __future__ import annotations

import itertools

import pytest

from ivr_engine.testing.rtp_pcap import (
    EVENT_CODES,
    PCMU,
    TELEPHONE_EVENT,
    Key,
    keys_at,
    read_rtp,
    write_pcap,
)


def events(packets):
    """The telephone-event packets grouped by event (RTP timestamp), in order."""
    ev = [(ms, p) for ms, p in packets if p["pt"] == TELEPHONE_EVENT]
    return [list(g) for _, g in itertools.groupby(ev, key=lambda x: x[1]["ts"])]


@pytest.mark.parametrize("duration,gap", [(40, 40), (60, 40), (100, 80), (200, 160)])
def test_each_key_is_one_rfc4733_event(tmp_path, duration, gap):
    keys = keys_at("113", 200, duration + gap, duration_ms=duration)
    packets = read_rtp(write_pcap(tmp_path / "k.pcap", keys, 2000))
    groups = events(packets)
    assert len(groups) == 3  # 1, 1, 3: three events, the repeated key included
    for key, group in zip(keys, groups):
        start = key.at_ms
        n = duration // 20
        assert [ms for ms, _ in group] == [start + 20 * i for i in range(n + 2)]
        fields = [p for _, p in group]
        assert {p["event"] for p in fields} == {EVENT_CODES[key.digit]}
        assert {p["ts"] for p in fields} == {16000 + start * 8}  # the event's start
        assert [p["marker"] for p in fields] == [True] + [False] * (n + 1)  # §2.5.1.3
        # the duration so far in timestamp units (8 per ms), growing, then the end
        assert [p["duration"] for p in fields] == [160 * min(i + 1, n) for i in range(n + 2)]
        # the last packet three times at the 20 ms update interval (§2.5.1.4)
        assert [p["end"] for p in fields] == [False] * (n - 1) + [True] * 3
    # one packet every 20 ms, sequence numbers one by one, audio timestamps on the clock
    assert [ms for ms, _ in packets] == list(range(0, 2000, 20))
    assert [p["seq"] for _, p in packets] == list(range(1000, 1000 + len(packets)))
    audio = [(ms, p) for ms, p in packets if p["pt"] == PCMU]
    assert all(p["ts"] == 16000 + ms * 8 for ms, p in audio)
    # the first packet of the stream and the first audio after each event carry the marker
    after = {key.at_ms + duration + 40 for key in keys} | {0}
    assert {ms for ms, p in audio if p["marker"]} == after & {ms for ms, _ in audio}


def test_pauses_shorter_than_the_end_retransmissions_are_refused(tmp_path):
    with pytest.raises(ValueError, match="overlaps"):
        write_pcap(tmp_path / "k.pcap", keys_at("12", 0, 60, duration_ms=40), 500)
    with pytest.raises(ValueError, match="less than a packet"):
        write_pcap(tmp_path / "k.pcap", [Key("1", 0, 10)], 500)
    with pytest.raises(ValueError, match="not a DTMF key"):
        write_pcap(tmp_path / "k.pcap", [Key("x", 0)], 500)
