"""relay.media.reports: the generate-RTCP state of one side (docs/spec/ng-protocol.md §8) on a
real loop and real loopback sockets: its schedule, what it consumes and counts, where it sends."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator

import pytest

from relay.media.reports import FIRST, MAX_SENT, MAX_SOURCES, NEXT, Reports
from relay.media.stream import Stream
from rtp.rtcp import SenderReport, SourceDescription, parse_compound


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    return s


@pytest.fixture
def side() -> Iterator[tuple[Reports, Stream, Stream, socket.socket, socket.socket]]:
    """A side's reports with its RTP and RTCP streams facing a party's two sockets."""
    rtp, rtcp, party_rtp, party_rtcp = _udp(), _udp(), _udp(), _udp()
    s_rtp = Stream(rtp, "127.0.0.1", rtp.getsockname()[1])
    s_rtcp = Stream(rtcp, "127.0.0.1", rtcp.getsockname()[1], is_rtcp=True)
    s_rtp.peer, s_rtcp.peer = party_rtp.getsockname(), party_rtcp.getsockname()
    r = Reports(b"0123456789ab")
    r.rtp, r.rtcp = s_rtp, s_rtcp
    yield r, s_rtp, s_rtcp, party_rtp, party_rtcp
    for s in (rtp, rtcp, party_rtp, party_rtcp):
        s.close()


def _rtp(seq: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes(160)


def test_schedule_first_then_every_10_to_14_s(side: tuple) -> None:  # type: ignore[type-arg]
    r = side[0]
    loop = asyncio.new_event_loop()
    try:
        r.bind(loop, lambda: 1e9)
        assert r._timer is not None
        first = r._timer.when() - loop.time()
        assert FIRST[0] - 0.1 <= first <= FIRST[1]
        r.bind(loop, lambda: 1e9)  # idempotent: the timer is not moved
        assert r._timer.when() - loop.time() <= first
        r._due()
        assert NEXT[0] - 0.1 <= r._timer.when() - loop.time() <= NEXT[1]
        r.unbind()
        assert r._timer is None
    finally:
        loop.close()


def test_nothing_before_rtp_was_forwarded(side: tuple) -> None:  # type: ignore[type-arg]
    r, _, _, _, party_rtcp = side
    r.send_reports(1e9)
    party_rtcp.settimeout(0.1)
    with pytest.raises(TimeoutError):
        party_rtcp.recv(2048)
    assert r.generated == 0


def test_report_to_the_rtcp_port_and_the_other_sides_lsr(side: tuple) -> None:  # type: ignore[type-arg]
    r, _, _, _, party_rtcp = side
    other = Reports(b"0123456789ab")
    r.other = other
    for seq in range(1, 11):
        assert r.received(_rtp(seq, 0xA), False, seq * 0.02)  # from the party
        other.received(_rtp(seq, 0xB), False, seq * 0.02)  # from the other party
        r.forwarded(_rtp(seq, 0xB))  # B's RTP towards our party
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, 0xA, 0xEEC044CE, 0x4CBAA582, 0, 1, 1)
    assert not r.received(sr, True, 0.5)  # consumed
    r.send_reports(1.0)
    (got_sr, sdes) = parse_compound(party_rtcp.recv(2048))
    assert isinstance(got_sr, SenderReport) and isinstance(sdes, SourceDescription)
    assert (got_sr.ssrc, got_sr.packets, got_sr.octets, got_sr.rtp_timestamp) == (
        0xB, 10, 1720, 1600)
    (block,) = got_sr.blocks
    assert (block.ssrc, block.highest_seq, block.lsr, block.dlsr) == (0xA, 10, 0x44CE4CBA, 32768)
    assert sdes.chunks[0].ssrc == 0xB and sdes.chunks[0].items[0].text == b"0123456789ab"
    assert other.sources[0xB].sr_middle != 0  # our SR is B's last SR now, as rtpengine does
    assert (r.generated, r.consumed) == (1, 1)


def test_muxed_side_gets_it_on_the_rtp_port(side: tuple) -> None:  # type: ignore[type-arg]
    r, _, _, party_rtp, _ = side
    r.mux = True
    r.forwarded(_rtp(1, 0xB))
    r.send_reports(1.0)
    assert party_rtp.recv(2048)[1] == 200


def test_ssrc_spray_is_bounded(side: tuple) -> None:  # type: ignore[type-arg]
    r = side[0]
    for ssrc in range(1000):
        r.received(_rtp(1, ssrc), False, 0.0)
        r.forwarded(_rtp(1, ssrc))
    assert (len(r.sources), len(r.sent)) == (MAX_SOURCES, MAX_SENT)
