"""The parsed SDP: every line kept verbatim (with its own terminator) plus read-only views.

The views are what the call model negotiates with; the lines are what `relay.sdp.rewrite` edits.
Both follow rtpengine 10.5's reading of the text (docs/spec/sdp.md §1.2; daemon/sdp.c `sdp_parse`,
`sdp_streams`), quirks included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from relay.sdp.attributes import Connection, Rtpmap, split_attribute
from rtp.payload_types import STATIC_PAYLOAD_TYPES

RTP_PROTOCOLS = frozenset(
    {"RTP/AVP", "RTP/SAVP", "RTP/AVPF", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"}
)
"""Transport protocols rtpengine treats as RTP (codec lists, a=rtcp, a=ptime)."""


class Line(NamedTuple):
    """One SDP line: `<kind>=<value><eol>`, exactly as received.

    A NamedTuple rather than a frozen dataclass: every request makes a dozen or two of these,
    and a tuple is built about three times faster (the frozen __init__ sets fields one by one).
    """

    kind: str
    """The line letter (v, o, s, c, m, a, …)."""
    value: str
    """Everything after `=` up to (not including) the terminator."""
    eol: str
    """"\\r\\n", "\\n", or "" for a last line without LF."""

    @property
    def text(self) -> str:
        return f"{self.kind}={self.value}{self.eol}"

    @property
    def attribute(self) -> tuple[str, str | None]:
        """For `a=` lines: (name, value or None)."""
        return split_attribute(self.value)


@dataclass(frozen=True, slots=True)
class Origin:
    """The six fields of `o=` (the address may be anything: rtpengine tolerates a bad one)."""

    username: str
    session_id: str
    version: str
    nettype: str
    addrtype: str
    address: str


@dataclass(frozen=True, slots=True)
class MediaSection:
    """One `m=` section: its lines (the `m=` line first) and what they say."""

    lines: tuple[Line, ...]
    media_type: str
    port: int
    port_count: int
    protocol: str
    formats: tuple[str, ...]
    """The m= format tokens as written."""
    payload_types: tuple[int, ...]
    """The formats as rtpengine reads them (RTP protocols only; empty otherwise)."""
    connection: Connection | None
    """The media-level c=, or None."""
    effective_connection: Connection | None
    """Media c=, else the session c=."""
    direction: str | None
    """rtpengine's reading: recvonly, else sendonly, else inactive (media or session level),
    else sendrecv if written; None if neither level has a direction attribute."""
    ptime: int | None
    rtcp_mux: bool
    rtcp_port: int | None
    rtcp_connection: Connection | None
    ice: bool
    """An a=ice-ufrag at media or session level: the sender does ICE (candidates alone do not
    count, rtpengine 10.5 just strips them)."""
    crypto: bool
    fingerprint: bool
    """a=fingerprint at media or session level."""
    setup: bool
    mid: str | None
    end_of_candidates: bool
    rtpmap: Mapping[int, Rtpmap] = field(default_factory=lambda: MappingProxyType({}))
    fmtp: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    rtcp_fb: Mapping[int, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def is_rtp(self) -> bool:
        return self.protocol in RTP_PROTOCOLS

    @property
    def rejected(self) -> bool:
        return self.port == 0

    def codec(self, payload_type: int) -> str | None:
        """`<encoding>/<clock>[/<channels>]` from a=rtpmap or RFC 3551; None if unknown."""
        rtpmap = self.rtpmap.get(payload_type)
        if rtpmap is not None:
            return rtpmap.text
        static = STATIC_PAYLOAD_TYPES.get(payload_type)
        return f"{static[0]}/{static[1]}" if static else None

    def attributes(self, name: str) -> tuple[str | None, ...]:
        """Values of this section's `a=<name>` lines, in order (None for a flag attribute)."""
        return tuple(
            line.attribute[1]
            for line in self.lines
            if line.kind == "a" and line.attribute[0] == name
        )


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body. `render(desc)` gives back the exact input text."""

    session_lines: tuple[Line, ...]
    media: tuple[MediaSection, ...]
    origin: Origin | None
    session_name: str | None
    connection: Connection | None
    direction: str | None
    """Session-level direction attribute (first one), or None."""
    ice: bool
    """An a=ice-ufrag at session level."""
    rtpengine_ids: tuple[str, ...] = ()
    """Values of session-level `a=rtpengine:` lines (loop-protect)."""
    tail: str = ""
    """A last single character rtpengine's parser stops before; it is copied to the output."""
    dropped: str = ""
    """Everything from an empty line on: rtpengine ignores it and leaves it out of its output."""

    def attributes(self, name: str) -> tuple[str | None, ...]:
        """Values of session-level `a=<name>` lines, in order."""
        return tuple(
            line.attribute[1]
            for line in self.session_lines
            if line.kind == "a" and line.attribute[0] == name
        )


def render(desc: SessionDescription) -> str:
    """The description's text, unchanged: the exact input of `parse`."""
    parts = [line.text for line in desc.session_lines]
    for media in desc.media:
        parts.extend(line.text for line in media.lines)
    return "".join(parts) + desc.tail + desc.dropped
