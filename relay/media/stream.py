"""One local media socket of a call and what the forwarding plane needs to know about it.

A `Stream` faces one party: that party sends to `local_port` and receives from it. A packet
that arrives on stream X (from party A) leaves through X.sink's socket (the stream facing the
other party B) towards X.sink.peer. Latching (endpoint learning) updates X.peer from the packets
that arrive on X. The call model (relay.call) creates and links streams; the forwarding plane
(relay.media.userspace) reads and counts. Plain attributes and ints: this object is on the hot path.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relay.media.reports import Reports
    from relay.media.secure import Transport
    from relay.media.transcoder import Transcoder

Address = tuple[str, int]

# Endpoint learning modes (rtpengine's --endpoint-learning / ng `endpoint-learning`).
LEARN_DELAYED = "delayed"
LEARN_IMMEDIATE = "immediate"
LEARN_OFF = "off"
LEARN_HEURISTIC = "heuristic"

Tap = Callable[["Stream", bytes, Address, float], None]
"""Called with (stream, packet, source address, arrival time) for recorded streams."""


class Stream:
    """A local RTP or RTCP socket facing one party, with the peer it learned and its counters."""

    __slots__ = (
        "sock",
        "local_address",
        "local_port",
        "family",
        "is_rtcp",
        "sink",
        "rtcp_sink",
        "peer",
        "sdp_peer",
        "confirmed",
        "learning",
        "learn_until",
        "strict_source",
        "media_handover",
        "asymmetric",
        "send_blocked",
        "filled",
        "packets",
        "bytes",
        "errors",
        "dropped",
        "last_packet",
        "ssrc",
        "tap",
        "tag",
        "call_id",
        "drop_foreign",
        "learned",
        "detected",
        "detected_for",
        "send_errors",
        "tap_errors",
        "transport",
        "reports",
        "notes",
        "retired_drops",
        "transcoder",
    )

    def __init__(
        self,
        sock: socket.socket,
        local_address: str,
        local_port: int,
        family: int = socket.AF_INET,
        is_rtcp: bool = False,
    ) -> None:
        self.sock = sock
        self.local_address = local_address
        self.local_port = local_port
        self.family = family
        self.is_rtcp = is_rtcp
        self.sink: Stream | None = None
        """The stream facing the other party; packets received here leave through its socket."""
        self.rtcp_sink: Stream | None = None
        """Set on the RTP stream of a side that muxes RTCP when the other side does not: RTCP
        arriving here (by its packet type) leaves through this stream (the other party's
        RTCP port) instead of `sink`. None: everything goes to `sink`."""
        self.peer: Address | None = None
        """Where packets for this stream's party are sent (learned, or from SDP)."""
        self.sdp_peer: Address | None = None
        """The endpoint this party advertised (SDP, or received-from with SIP-source-address)."""
        self.confirmed = False
        self.learning = LEARN_DELAYED
        self.learn_until = 0.0
        """Monotonic time until which a new source re-targets without confirming (delayed)."""
        self.strict_source = False
        self.media_handover = False
        self.asymmetric = False
        self.send_blocked = False
        """True while the party is on hold with a zero address: nothing is sent to it."""
        self.filled = False
        """True once the other side is signalled (there is somewhere to forward to)."""
        self.packets = 0
        self.bytes = 0
        self.errors = 0
        self.dropped = 0
        """Packets dropped by source checks after latching (injection attempts)."""
        self.last_packet = 0.0
        """Wall-clock time of the last received packet (0 = never)."""
        self.ssrc: int | None = None
        self.tap: Tap | None = None
        self.tag = ""
        self.call_id = ""
        self.drop_foreign = True
        """After confirmation, drop (and count) packets from any source but the peer. rtpvault's
        default; False restores rtpengine 10.5 (relay them without re-targeting) unless
        strict_source is set. See relay.media.latch."""
        self.learned: Address | None = None
        """First source seen on an asymmetric stream (what strict-source compares against)."""
        self.detected: tuple[Address | None, ...] | None = None
        """Heuristic learning: best source per preference slot since the last signal."""
        self.detected_for = 0.0
        """The learn_until value `detected` belongs to (a new signal resets the slots)."""
        self.send_errors = 0
        """Failed sendto calls towards this stream's peer (the plane never raises them)."""
        self.tap_errors = 0
        """Exceptions raised by `tap` (counted, never propagated into the media path)."""
        self.transport: Transport | None = None
        """SRTP/DTLS/ICE state of an encrypted or ICE leg (relay.media.secure); None = plain."""
        self.reports: Reports | None = None
        """generate-RTCP state of this stream's side (relay.media.reports); None = off."""
        self.notes: set[str] = set()
        """Causes of drops already logged; the call model gives all streams of a call one set
        (one log line per call and cause)."""
        self.retired_drops: dict[str, int] | None = None
        """Secure drop counts of transports detached from this stream (relay.media.secure)."""
        self.transcoder: Transcoder | None = None
        """The codec chain of what this stream's party sends (relay.media.transcoder), on the
        side's RTP and RTCP streams; None: packets are forwarded byte for byte."""

    def __repr__(self) -> str:
        kind = "RTCP" if self.is_rtcp else "RTP"
        return f"<Stream {kind} {self.local_address}:{self.local_port} peer={self.peer}>"
