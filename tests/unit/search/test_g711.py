"""recorder.g711: the decode tables are G.711's, checked against its defining rules."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from recorder.g711 import (
    ALAW_TO_LINEAR,
    ULAW_TO_LINEAR,
    decode_alaw,
    decode_ulaw,
    encode_alaw,
    encode_ulaw,
)


def test_known_values() -> None:
    # G.711 table 2: µ-law 0xFF and 0x7F are the two zeros, 0x00 / 0x80 the extremes
    assert ULAW_TO_LINEAR[0xFF] == 0 and ULAW_TO_LINEAR[0x7F] == 0
    assert ULAW_TO_LINEAR[0x80] == 32124 and ULAW_TO_LINEAR[0x00] == -32124
    # G.711 table 1: A-law 0xD5 / 0x55 are the smallest magnitudes, 0xAA / 0x2A the extremes
    assert ALAW_TO_LINEAR[0xD5] == 8 and ALAW_TO_LINEAR[0x55] == -8
    assert ALAW_TO_LINEAR[0xAA] == 32256 and ALAW_TO_LINEAR[0x2A] == -32256


def test_tables_are_odd_symmetric_and_monotonic_per_sign() -> None:
    for table, flip in ((ULAW_TO_LINEAR, 0x80), (ALAW_TO_LINEAR, 0x80)):
        assert all(table[c] == -table[c ^ flip] for c in range(256))
    positive = sorted(range(128), key=lambda c: ULAW_TO_LINEAR[0x80 | c])
    assert len({ULAW_TO_LINEAR[0x80 | c] for c in positive}) == 128


def test_payload_decode_is_little_endian_16_bit() -> None:
    assert decode_ulaw(b"\x80\xff") == struct.pack("<hh", 32124, 0)
    assert decode_alaw(b"\xd5\x2a") == struct.pack("<hh", 8, -32256)


@given(st.binary(max_size=400))
def test_decode_length_and_values(payload: bytes) -> None:
    for decode, table in ((decode_ulaw, ULAW_TO_LINEAR), (decode_alaw, ALAW_TO_LINEAR)):
        pcm = decode(payload)
        assert len(pcm) == 2 * len(payload)
        assert list(struct.unpack(f"<{len(payload)}h", pcm)) == [table[b] for b in payload]


@given(st.integers(0, 255))
def test_decode_then_encode_is_identity(code: int) -> None:
    # every code decodes to a value that encodes back to itself (µ-law 0x7F is "-0" → 0xFF)
    assert encode_alaw(ALAW_TO_LINEAR[code]) == code
    assert encode_ulaw(ULAW_TO_LINEAR[code]) == (0xFF if code == 0x7F else code)


@given(st.integers(-32768, 32767))
def test_encode_picks_a_nearby_code(sample: int) -> None:
    # quantisation error is bounded by the segment step (at most 1/16 of the magnitude + 1 step)
    for enc, table in ((encode_ulaw, ULAW_TO_LINEAR), (encode_alaw, ALAW_TO_LINEAR)):
        back = table[enc(sample)]
        assert abs(back - sample) <= max(abs(sample) // 16, 16) + 1024 * (abs(sample) > 31000)
