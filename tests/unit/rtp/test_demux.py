"""rtp.demux: the two RTCP tests (RFC 5761 §4 and rtpengine's rtcp_demux_is_rtcp)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtp.demux import RTCP_CONFLICT_PTS, RTCP_MARKED_PTS, is_rtcp, looks_like_rtcp


@pytest.mark.parametrize(
    ("second", "expected"), [(200, True), (194, True), (223, True), (193, False), (224, False)]
)
def test_looks_like_rtcp(second: int, expected: bool) -> None:
    data = bytes([0x80, second]) + bytes(10)
    assert looks_like_rtcp(data, len(data)) is expected
    assert looks_like_rtcp(data[:11], 11) is False


def test_looks_like_rtcp_reads_the_datagram_in_a_larger_buffer() -> None:
    buf = bytearray(64)
    buf[:2] = b"\x80\xc9"
    assert looks_like_rtcp(buf, 12) and not looks_like_rtcp(buf, 11)
    assert looks_like_rtcp(memoryview(buf), 12)


@pytest.mark.parametrize("ptype", [200, 201, 202, 203, 204])
def test_is_rtcp_sr_to_app(ptype: int) -> None:
    assert is_rtcp(struct.pack("!BBHI", 0x81, ptype, 1, 5))


@pytest.mark.parametrize(
    "packet",
    [
        struct.pack("!BBHII", 0x80, 0, 1, 160, 5) + bytes(160),  # RTP PCMU
        struct.pack("!BBHI", 0x81, 205, 1, 5),  # RTPFB: not SR..APP
        struct.pack("!BBHI", 0x41, 200, 1, 5),  # version 1
        struct.pack("!BBH", 0x81, 200, 1) + b"\0\0\0",  # 7 bytes
    ],
)
def test_is_rtcp_refuses(packet: bytes) -> None:
    assert not is_rtcp(packet)


@given(st.binary(max_size=40))
def test_rules_agree_with_their_definitions(data: bytes) -> None:
    second = data[1] if len(data) > 1 else -1
    assert is_rtcp(data) == (len(data) >= 8 and data[0] >> 6 == 2 and second in range(200, 205))
    assert looks_like_rtcp(data, len(data)) == (len(data) >= 12 and 194 <= second <= 223)


def test_reserved_payload_types() -> None:
    # with the marker bit set, PT 72..76 is the second byte of an SR..APP header
    assert [0x80 | pt for pt in RTCP_MARKED_PTS] == [200, 201, 202, 203, 204]
    assert [0x80 | pt for pt in RTCP_CONFLICT_PTS] == list(range(192, 224))
