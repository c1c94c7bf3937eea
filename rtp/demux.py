"""Is a datagram RTCP? RTP/RTCP demultiplexing on one port (RFC 5761 §4).

Two rules, each kept where it came from:

* `is_rtcp`: RFC 5761's test as recorder and HEP export use it: version 2, at least the 8 bytes
  of an RTCP header + SSRC, packet type SR..APP (200-204).
* `looks_like_rtcp`: rtpengine's `rtcp_demux_is_rtcp`, which the relay's latching follows: at
  least 12 bytes and a second byte in 194..223 (any RTCP type, version not looked at).

RTP payload types whose second byte can equal an RTCP type are reserved (RFC 3551 §6, RFC 5761
§4): `RTCP_MARKED_PTS` are those that collide with SR..APP when the marker bit is set,
`RTCP_CONFLICT_PTS` the whole range that collides with 192..223.
"""

from __future__ import annotations

__all__ = [
    "is_rtcp",
    "looks_like_rtcp",
    "RTCP_SR_TO_APP",
    "RTCP_MARKED_PTS",
    "RTCP_CONFLICT_PTS",
]

RTCP_SR_TO_APP = range(200, 205)
"""RTCP packet types SR, RR, SDES, BYE, APP (RFC 3550 §12.1)."""
RTCP_MARKED_PTS = range(72, 77)
"""RTP payload types that, marker bit set, read as RTCP SR..APP (RFC 3551 §6: reserved)."""
RTCP_CONFLICT_PTS = range(64, 96)
"""RTP payload types that collide with RTCP types 192-223 on a muxed port (RFC 5761 §4)."""


def is_rtcp(packet: bytes | bytearray | memoryview) -> bool:
    """RFC 5761 §4: version 2, 8 bytes or more, packet type 200-204 (SR..APP)."""
    return len(packet) >= 8 and packet[0] >> 6 == 2 and 200 <= packet[1] <= 204


def looks_like_rtcp(packet: bytes | bytearray | memoryview, length: int) -> bool:
    """rtpengine's rtcp_demux_is_rtcp: `length` >= 12 and the second byte in 194..223.

    `length` is the datagram's size (the packet may sit in a larger receive buffer); the relay
    calls this once per packet of a stream that is not latched yet, so it stays one expression.
    """
    return length >= 12 and 194 <= packet[1] <= 223
