"""relay.media.gate: block media, silence media and block DTMF on RTP from one party
(docs/spec/ng-protocol.md §9.5-9.7)."""

from __future__ import annotations

import struct

from relay.media.gate import Gate


def rtp(pt: int, payload: bytes, first: int = 0x80, extra: bytes = b"") -> bytes:
    return struct.pack("!BBHII", first, pt, 7, 160, 0xAAAA0001) + extra + payload


def gate(**flags: bool) -> Gate:
    g = Gate()
    g.dtmf_pts = frozenset({101})
    g.silence_bytes = {0: 0xFF, 8: 0xD5}
    for k, v in flags.items():
        setattr(g, k, v)
    return g


def test_nothing_on_forwards_unchanged() -> None:
    packet = rtp(0, b"\x01" * 160)
    assert gate().filter(packet) is packet


def test_block_media_drops_every_packet_and_counts() -> None:
    g = gate(block=True)
    assert g.filter(rtp(0, b"\x01" * 160)) is None
    assert g.filter(rtp(101, b"\x05\x0a\x00\xa0")) is None
    assert g.dropped == 2


def test_block_dtmf_drops_only_telephone_events() -> None:
    g = gate(block_dtmf=True)
    audio = rtp(0, b"\x01" * 160)
    assert g.filter(audio) == audio
    assert g.filter(rtp(101 | 0x80, b"\x05\x0a\x00\xa0")) is None  # marker bit set too
    assert g.dropped == 1


def test_silence_replaces_the_payload_with_the_codecs_pattern() -> None:
    g = gate(silence=True)
    assert g.filter(rtp(0, b"\x01" * 160)) == rtp(0, b"\xff" * 160)
    assert g.filter(rtp(8, b"\x01" * 160)) == rtp(8, b"\xd5" * 160)
    events = rtp(101, b"\x05\x0a\x00\xa0")
    assert g.filter(events) == events  # no silence pattern: unchanged (rtpengine's codec_def)


def test_silence_keeps_csrc_extension_and_padding() -> None:
    g = gate(silence=True)
    csrc = b"\x00\x00\x00\x09"
    ext = b"\xbe\xde\x00\x01" + b"\x10\xaa\x00\x00"
    padding = b"\x00\x00\x03"
    packet = rtp(0, b"\x01" * 20 + padding, first=0x80 | 0x20 | 0x10 | 1, extra=csrc + ext)
    out = g.filter(packet)
    assert out is not None and len(out) == len(packet)
    assert out == rtp(0, b"\xff" * 20 + padding, first=0x80 | 0x20 | 0x10 | 1, extra=csrc + ext)


def test_short_packets_pass() -> None:
    assert gate(silence=True, block_dtmf=True).filter(b"\x80\x65") == b"\x80\x65"
