"""The few RTP header operations the chain needs, on bytes (RFC 3550 §5.1), pure.

Kept apart from rtp.header's dataclass because the chain runs per packet: a tuple from one
`struct` call and a slice is all it needs, and the header it writes is always the plain
12-byte one (no CSRC, extension or padding: the payloads are ours).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = ["Rtp", "build", "parse", "rewrite"]

_HDR = struct.Struct("!BBHII")


class Rtp(NamedTuple):
    marker: bool
    pt: int
    seq: int
    ts: int
    ssrc: int
    payload: bytes


def parse(data: bytes) -> Rtp | None:
    """The packet's header fields and payload (CSRCs, extension and padding skipped); None
    when it is not RTP version 2 or its lengths do not add up."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    start = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if len(data) < start + 4:
            return None
        start += 4 + 4 * int.from_bytes(data[start + 2 : start + 4], "big")
    end = len(data)
    if b0 & 0x20:
        if end <= start or data[-1] == 0:
            return None
        end -= data[-1]
    if end < start:
        return None
    return Rtp(bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc, data[start:end])


def build(marker: bool, pt: int, seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    """A plain RTP v2 packet."""
    return _HDR.pack(0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF,
                     ssrc & 0xFFFFFFFF) + payload  # fmt: skip


def rewrite(data: bytes, pt: int | None = None, seq: int | None = None,
            ssrc: int | None = None) -> bytes:  # fmt: skip
    """`data` (a parsed RTP packet) with its payload type, sequence number or SSRC replaced;
    everything else, extension and padding included, byte for byte."""
    head = bytearray(data[:12])
    if pt is not None:
        head[1] = (head[1] & 0x80) | pt
    if seq is not None:
        head[2:4] = (seq & 0xFFFF).to_bytes(2, "big")
    if ssrc is not None:
        head[8:12] = (ssrc & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes(head) + data[12:]
