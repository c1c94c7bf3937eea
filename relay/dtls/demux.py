"""RFC 7983 §7 first-byte demultiplexing of one UDP port: STUN, DTLS, RTP/RTCP (and the rest).

    +----------------+
    |        [0..3] -+--> STUN
    |      [16..19] -+--> ZRTP
    |      [20..63] -+--> DTLS
    |      [64..79] -+--> TURN channel
    |    [128..191] -+--> RTP/RTCP
    +----------------+

Pure: one table lookup on the first byte. RTP and RTCP are told apart afterwards by
`rtp.demux` (RFC 5761 §4); this module only says which protocol stack gets the datagram.
"""

from __future__ import annotations

import enum

from rtp.demux import is_rtcp

__all__ = ["Kind", "classify", "is_dtls", "is_stun", "is_srtp_or_srtcp"]


class Kind(enum.Enum):
    """Where a datagram goes (RFC 7983 §7)."""

    STUN = "stun"
    ZRTP = "zrtp"
    DTLS = "dtls"
    TURN_CHANNEL = "turn-channel"
    RTP = "rtp"
    RTCP = "rtcp"
    UNKNOWN = "unknown"
    """Empty, or a first byte no protocol claims (80-127, 192-255): dropped and counted."""


def _table() -> tuple[Kind, ...]:
    """256 entries, first byte → Kind, built once from RFC 7983 §7's ranges."""
    ranges = (
        (range(0, 4), Kind.STUN),
        (range(16, 20), Kind.ZRTP),
        (range(20, 64), Kind.DTLS),
        (range(64, 80), Kind.TURN_CHANNEL),
        (range(128, 192), Kind.RTP),
    )
    table = [Kind.UNKNOWN] * 256
    for span, kind in ranges:
        for byte in span:
            table[byte] = kind
    return tuple(table)


_BY_FIRST_BYTE = _table()


def classify(datagram: bytes | bytearray | memoryview) -> Kind:
    """RFC 7983 §7 by the first byte; RTP vs RTCP by RFC 5761 §4 (packet type 200-204)."""
    if not datagram:
        return Kind.UNKNOWN
    kind = _BY_FIRST_BYTE[datagram[0]]
    if kind is Kind.RTP and is_rtcp(datagram):
        return Kind.RTCP
    return kind


def is_dtls(datagram: bytes | bytearray | memoryview) -> bool:
    """First byte 20-63 (RFC 7983 §7): a DTLS record (content types 20-23, 25 and reserved)."""
    return bool(datagram) and 20 <= datagram[0] <= 63


def is_stun(datagram: bytes | bytearray | memoryview) -> bool:
    """First byte 0-3 (RFC 7983 §7)."""
    return bool(datagram) and datagram[0] <= 3


def is_srtp_or_srtcp(datagram: bytes | bytearray | memoryview) -> bool:
    """First byte 128-191 (RFC 7983 §7): RTP or RTCP, protected or not."""
    return bool(datagram) and 128 <= datagram[0] <= 191
