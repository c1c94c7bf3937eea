"""rtp.rtcp: compound packets both ways (hypothesis), golden SR+SDES and RR, defects named and
what came before them kept."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtp.rtcp import (
    OtherPacket,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    RtcpPacket,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    parse_compound,
    parse_leading,
)

BLOCK = ReportBlock(0x22222222, 5, 3, 1010, 42, 305419896, 16)
SR = SenderReport(0x11111111, 4004573410, 724307968, 0, 10, 1600, (BLOCK,))
SDES = SourceDescription((SdesChunk(0x11111111, (SdesItem(1, b"alice@example"),)),))
# docs/spec/hep.md §2.3: the SR+SDES rtpengine exported, as the peer sent it
SR_SDES = bytes.fromhex(
    "81c8000c11111111eeb0f0e22b2c1000000000000000000a00000640"
    "2222222205000003000003f20000002a1234567800000010"
    "81ca000511111111010d616c696365406578616d706c6500"
)

u32 = st.integers(0, 2**32 - 1)
blocks = st.lists(st.builds(ReportBlock, u32, st.integers(0, 255), st.integers(0, 2**24 - 1),
                            u32, u32, u32, u32), max_size=3).map(tuple)
words = st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4])
items = st.builds(SdesItem, st.integers(1, 255), st.binary(max_size=20))
packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(SenderReport, u32, u32, u32, u32, u32, u32, blocks, words, st.booleans()),
    st.builds(ReceiverReport, u32, blocks, words, st.booleans()),
    st.builds(SourceDescription,
              st.lists(st.builds(SdesChunk, u32, st.lists(items, max_size=3).map(tuple)),
                       max_size=3).map(tuple),
              st.none(), st.booleans()),
    st.builds(OtherPacket, st.integers(192, 223).filter(lambda t: t not in (200, 201, 202)),
              st.integers(0, 31), words, st.booleans()),
)  # fmt: skip


def test_golden_sr_sdes() -> None:
    assert parse_compound(SR_SDES) == (SR, SDES)
    assert bytes(SR) + bytes(SDES) == SR_SDES


def test_receiver_report() -> None:
    data = struct.pack("!BBHI", 0x81, 201, 7, 0x22222222) + struct.pack(
        "!IIIIII", 0x11111111, (2 << 24) | 1, 2000, 7, 0, 0)  # fmt: skip
    (rr,) = parse_compound(data)
    assert rr == ReceiverReport(0x22222222, (ReportBlock(0x11111111, 2, 1, 2000, 7, 0, 0),))
    assert bytes(rr) == data


def test_bye_is_kept_undecoded() -> None:
    bye = struct.pack("!BBHI", 0x81, 203, 1, 7)
    assert parse_compound(bye) == (OtherPacket(203, 1, struct.pack("!I", 7)),)


@given(st.lists(packets, min_size=1, max_size=4))
def test_round_trip(ps: list[RtcpPacket]) -> None:
    data = b"".join(map(bytes, ps))
    assert parse_compound(data) == tuple(ps)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_packets_or_rtcperror(data: bytes) -> None:
    try:
        parse_compound(data)
    except RtcpError as exc:
        assert parse_leading(data) == exc.parsed
    else:
        assert parse_leading(data) == parse_compound(data)


@given(st.lists(packets, min_size=1, max_size=3), st.binary(min_size=1, max_size=3))
def test_a_defect_keeps_what_came_before(ps: list[RtcpPacket], junk: bytes) -> None:
    data = b"".join(map(bytes, ps))
    with pytest.raises(RtcpError) as err:
        parse_compound(data + junk)
    assert err.value.parsed == tuple(ps)


@pytest.mark.parametrize(
    ("data", "message", "kept"),
    [
        (SR_SDES[:-4], "type 202 at offset 52: length 5 words runs 4 bytes past", 1),
        (SR_SDES + b"\x41\xc9\x00\x00", "version 1 at offset 76: expected 2", 2),
        (SR_SDES + b"\x81\xc9", "2 bytes left at offset 76", 2),
        (struct.pack("!BBH", 0x80, 200, 1) + bytes(4), "SR of 8 bytes: expected at least 28", 0),
        (struct.pack("!BBHI", 0x82, 201, 1, 5), "RR with 2 report blocks: the packet ends", 0),
    ],
)
def test_defects_are_named(data: bytes, message: str, kept: int) -> None:
    with pytest.raises(RtcpError, match=message) as err:
        parse_compound(data)
    assert len(err.value.parsed) == kept


def test_cut_sdes_keeps_the_items_before_the_cut() -> None:
    chunk = struct.pack("!I", 9) + bytes([1, 2]) + b"ab" + bytes([2, 9]) + b"xy"  # 2nd item cut
    data = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    with pytest.raises(RtcpError, match="SDES item of type 2") as err:
        parse_compound(data)
    assert err.value.parsed == (SourceDescription((SdesChunk(9, (SdesItem(1, b"ab"),)),), 1),)


def test_values_that_do_not_fit_are_refused() -> None:
    with pytest.raises(RtcpError, match="at most 255 bytes"):
        SdesItem(1, bytes(256))
    with pytest.raises(RtcpError, match="count 32"):
        bytes(ReceiverReport(1, (BLOCK,) * 32))
    with pytest.raises(RtcpError, match="not a multiple of 4"):
        bytes(OtherPacket(203, 1, b"abc"))
