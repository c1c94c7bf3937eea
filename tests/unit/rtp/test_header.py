"""rtp.header: the RTP fixed header (RFC 3550 §5.1) both ways, and errors that name the field."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtp.header import SSRC_OFFSET, RtpError, RtpHeader, read_u16, read_u32

PCMU = struct.pack("!BBHII", 0x80, 0, 1000, 160, 0x11223344) + bytes(160)

u32 = st.integers(0, 2**32 - 1)
headers = st.builds(
    RtpHeader,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=u32,
    ssrc=u32,
    marker=st.booleans(),
    padding=st.booleans(),
    csrcs=st.lists(u32, max_size=15).map(tuple),
    extension=st.none() | st.tuples(st.integers(0, 0xFFFF),
                                    st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4])),
)


def test_pcmu_packet() -> None:
    h = RtpHeader.parse(PCMU)
    assert (h.payload_type, h.sequence, h.timestamp, h.ssrc, h.marker) == (0, 1000, 160,
                                                                           0x11223344, False)
    assert h.size == 12 and bytes(h) == PCMU[:12]
    assert read_u32(PCMU, SSRC_OFFSET)[0] == 0x11223344 and read_u16(PCMU, 2)[0] == 1000


@given(headers, st.binary(max_size=20))
def test_round_trip(h: RtpHeader, payload: bytes) -> None:
    assert RtpHeader.parse(bytes(h) + payload) == h
    assert len(bytes(h)) == h.size


@given(st.binary(max_size=80))
def test_arbitrary_bytes_give_a_header_or_rtperror(data: bytes) -> None:
    try:
        RtpHeader.parse(data)
    except RtpError:
        pass


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (PCMU[:11], "needs 12"),
        (b"\x40" + PCMU[1:], "version 1: expected 2"),
        (b"\x82" + PCMU[1:12], "CSRC count 2"),
        (b"\x90" + PCMU[1:12] + b"\0\0\0\x02" + bytes(4), "extension of 2 words"),
    ],
)
def test_malformed_header_is_refused_with_the_field(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        RtpHeader.parse(data)
