"""RFC 7983 §7 first-byte demultiplexing, and DTLS record framing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.dtls import DtlsGarbage
from relay.dtls.demux import Kind, classify, is_dtls, is_srtp_or_srtcp, is_stun
from relay.dtls.records import pack_datagrams, split_records

EXPECTED = {
    **dict.fromkeys(range(0, 4), Kind.STUN),
    **dict.fromkeys(range(16, 20), Kind.ZRTP),
    **dict.fromkeys(range(20, 64), Kind.DTLS),
    **dict.fromkeys(range(64, 80), Kind.TURN_CHANNEL),
    **dict.fromkeys(range(128, 192), Kind.RTP),
}


@pytest.mark.parametrize("first", range(256))
def test_every_first_byte(first: int) -> None:
    datagram = bytes([first, 0]) + bytes(20)
    assert classify(datagram) is EXPECTED.get(first, Kind.UNKNOWN)
    assert is_dtls(datagram) == (20 <= first <= 63)
    assert is_stun(datagram) == (first <= 3)
    assert is_srtp_or_srtcp(datagram) == (128 <= first <= 191)


def test_rtcp_is_told_from_rtp_and_empty_is_unknown() -> None:
    assert classify(b"\x80\xc8" + bytes(26)) is Kind.RTCP  # SR
    assert classify(b"\x80\x00" + bytes(10)) is Kind.RTP
    assert classify(b"") is Kind.UNKNOWN and not is_dtls(b"") and not is_stun(b"")


@given(st.binary(max_size=64))
def test_classify_never_raises(data: bytes) -> None:
    assert isinstance(classify(data), Kind)
    assert isinstance(classify(memoryview(data)), Kind)


def _record(body: bytes, kind: int = 22) -> bytes:
    return bytes([kind]) + b"\xfe\xfd" + bytes(8) + len(body).to_bytes(2, "big") + body


@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(min_value=13, max_value=1500))
def test_records_split_and_pack_round_trip(bodies: list[bytes], mtu: int) -> None:
    records = [_record(b) for b in bodies]
    assert split_records(b"".join(records)) == records
    datagrams = pack_datagrams(records, mtu)
    assert b"".join(datagrams) == b"".join(records)
    assert all(len(d) <= mtu or len(split_records(d)) == 1 for d in datagrams)


def test_cut_records_are_garbage() -> None:
    with pytest.raises(DtlsGarbage, match="cut at"):
        split_records(_record(b"abcdef")[:-1])
    with pytest.raises(DtlsGarbage, match="trailing bytes"):
        split_records(_record(b"a") + b"\x16\xfe")
