"""relay.transcode.packet: build/parse laws, and arbitrary bytes never raise."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relay.transcode import packet


@given(st.booleans(), st.integers(0, 127), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF),
       st.integers(0, 0xFFFFFFFF), st.binary(max_size=64))  # fmt: skip
def test_parse_inverts_build(m: bool, pt: int, seq: int, ts: int, ssrc: int, pl: bytes) -> None:
    assert packet.parse(packet.build(m, pt, seq, ts, ssrc, pl)) == (m, pt, seq, ts, ssrc, pl)


@given(st.binary(max_size=80))
def test_arbitrary_bytes_parse_or_give_none(data: bytes) -> None:
    got = packet.parse(data)
    assert got is None or len(got.payload) <= len(data) - 12


def test_csrc_extension_and_padding_are_skipped() -> None:
    head = bytes([0xB1, 0x80 | 8]) + (5).to_bytes(2, "big") + (7).to_bytes(4, "big") \
        + (9).to_bytes(4, "big")
    csrc = (1).to_bytes(4, "big")
    ext = bytes.fromhex("bede0001") + b"\x10\xaa\x00\x00"
    data = head + csrc + ext + b"payload" + b"\x00\x00\x03"
    assert packet.parse(data) == (True, 8, 5, 7, 9, b"payload")
    assert packet.parse(data[:-1] + b"\x00") is None  # padding count 0
    assert packet.parse(head + csrc + ext[:2]) is None


def test_rewrite_keeps_everything_else() -> None:
    data = packet.build(True, 0, 1, 2, 3, b"x") + b""
    out = packet.rewrite(data, pt=101, seq=0x1FFFF, ssrc=0x1_0000_0004)
    assert packet.parse(out) == (True, 101, 0xFFFF, 2, 4, b"x")
    assert packet.rewrite(data) == data
