"""`a=` line values as rtpengine 10.5 understands them (daemon/sdp.c `parse_attribute`).

An attribute whose value rtpengine cannot parse (an `a=rtpmap` without clock rate, an `a=fmtp`
without a numeric payload type, …) is not registered by it, so it is neither used nor stripped:
the line stays in place. The parsers here return None in exactly those cases.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from relay.sdp.text import c_strtol, parse_ip, str_to_i, tokens

_memo = lru_cache(maxsize=1024)
"""The parsers below are pure and return immutable values, and the same attribute texts
(`rtpmap:0 PCMU/8000`, `IN IP4 <proxy>`) come in every call: memoised, they cost a lookup."""

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
ICE_ATTRIBUTES = frozenset(
    {"ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "ice-mismatch", "remote-candidates"}
)
"""ICE attributes stripped at both levels (plus `candidate`), rtpengine's ATTR_ICE* ids."""


@dataclass(frozen=True, slots=True)
class Connection:
    """An address from `c=` (or the address part of `a=rtcp:`)."""

    family: str
    """"IP4" or "IP6"."""
    address: str

    @property
    def zero(self) -> bool:
        """The hold address (0.0.0.0 or ::), which rtpengine keeps in its output."""
        try:
            return ipaddress.ip_address(self.address).is_unspecified
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class Rtpmap:
    """`a=rtpmap:<pt> <encoding>/<clock>[/<channels>]` as rtpengine re-prints it."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1

    @property
    def text(self) -> str:
        """The encoding as rtpengine prints it: channels only when more than one."""
        if self.channels > 1:
            return f"{self.encoding}/{self.clock_rate}/{self.channels}"
        return f"{self.encoding}/{self.clock_rate}"


@_memo
def split_attribute(value: str) -> tuple[str, str | None]:
    """`name:value` → (name, value); a flag attribute (no colon) has value None."""
    name, colon, rest = value.partition(":")
    return (name, rest) if colon else (name, None)


@_memo
def parse_connection(value: str) -> tuple[Connection, tuple[int, int]] | None:
    """`IN IP4 <addr>` → the connection and the span from address type to address end."""
    found = tokens(value, 3)
    if found is None:
        return None
    (n0, n1), (t0, t1), (a0, a1) = found[0]
    if value[n0:n1] not in ("IN", "in"):
        return None
    family, address = value[t0:t1], value[a0:a1]
    if not parse_ip(family, address):
        return None
    return Connection(family, address), (t0, a1)


@_memo
def parse_rtpmap(value: str | None) -> Rtpmap | None:
    """rtpengine's parse_attribute_rtpmap; None where it fails (the line is then left alone)."""
    found = tokens(value or "", 2)
    if value is None or found is None:
        return None
    (p0, p1), (e0, e1) = found[0]
    pt, _ = c_strtol(value, p0)
    encoding_with_params = value[e0:e1]
    encoding, slash, clock_and_params = encoding_with_params.partition("/")
    if pt is None or not slash:
        return None
    clock_str, slash2, params = clock_and_params.partition("/")
    channels = 1
    if slash2 and params:
        count, end = c_strtol(params)
        if count and end == len(params):
            channels = count
    clock, end = c_strtol(clock_str)
    if clock is None or end != len(clock_str):
        return None
    # strtoul into an unsigned int: rtpengine wraps, so do we.
    return Rtpmap(pt % 2**32, encoding, clock % 2**32, channels)


@_memo
def parse_fmtp(value: str | None) -> tuple[int, str] | None:
    """`<pt> <params>` → (pt, params); None without a numeric payload type."""
    found = tokens(value or "", 1)
    if value is None or found is None:
        return None
    [(p0, p1)], rest = found
    pt = str_to_i(value[p0:p1], -1)
    if pt == -1:
        return None
    return pt, value[rest:]


@_memo
def parse_rtcp_fb(value: str | None) -> tuple[int, str] | None:
    """`<pt> <feedback>` → (pt, feedback); None for `*` and other non-numeric payload types."""
    found = tokens(value or "", 1)
    if value is None or found is None:
        return None
    [(p0, p1)], rest = found
    feedback = value[rest:]
    # rtpengine compares the feedback (not the PT) with "*"; either way the line stays.
    pt = -1 if feedback == "*" else str_to_i(value[p0:p1], -1)
    if pt == -1:
        return None
    return pt, feedback


@_memo
def parse_rtcp(value: str | None) -> tuple[int, Connection | None] | None:
    """`<port> [IN IP4 <addr>]` → (port, address); None if invalid (rtpengine strips it anyway)."""
    found = tokens(value or "", 1)
    if value is None or found is None:
        return None
    [(p0, p1)], rest = found
    port = str_to_i(value[p0:p1], 0)
    if not 0 < port <= 0xFFFF:
        return None
    if rest >= len(value):
        return port, None
    conn = parse_connection(value[rest:])
    if conn is None:
        return None
    return port, conn[0]
