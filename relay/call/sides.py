"""The per-side decisions of one SDP passing one m= line: rtcp-mux, direction, endpoint, peers,
protocol and learning, as rtpengine 10.5 takes them (docs/spec/sdp.md §1.5–§1.16). No I/O:
these read and set fields of `MediaSide`s and their `Stream`s; ports come from
relay.call.streams.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from relay.call.model import Call, MediaSide, Party
from relay.call.offered import OfferedMedia
from relay.call.options import CallOptions
from relay.call.secure import SRTP_PROTOCOLS
from relay.sdp.model import RTP_PROTOCOLS


@dataclass(slots=True)
class RequestState:
    """What rtpengine makes sticky while it walks one request's m= lines (its `sdp_ng_flags`
    are changed in place there; the request's options stay untouched here)."""

    options: CallOptions
    trust_address: bool | None
    """Starts as the options'; ICE in an m= line turns it on for that line and the later ones."""
    mux_require: bool = False
    """rtcp-mux `require`, set by the options or by an m= line where mux is already in use."""

    @classmethod
    def of(cls, options: CallOptions) -> RequestState:
        return cls(options, options.trust_address, "require" in options.rtcp_mux)

    def rtcp_mux(self) -> frozenset[str]:
        opts = self.options.rtcp_mux
        return opts | {"require"} if self.mux_require else opts


def source_address(state: RequestState, sip_source: bool) -> str | None:
    """The SIP source address (`received-from`) when it replaces the SDP's address."""
    # the last of trust-address / SIP-source-address counts (rtpengine's flag order)
    trust = state.trust_address if state.trust_address is not None else not sip_source
    received = state.options.received_from
    return received[1] if not trust and received else None


def rtcp_mux_logic(
    sender: MediaSide, receiver: MediaSide, sdp_mux: bool, opts: frozenset[str], offer: bool
) -> None:
    """rtpengine 10.5's MEDIA_FLAG_RTCP_MUX bookkeeping for one m= line that is not rejected
    (`__media_init_from_flags` copies the sender's a=rtcp-mux, then `__rtcp_mux_logic`)."""
    sender.rtcp_mux = sdp_mux
    if not offer:
        if not sender.rtcp_mux_override:
            receiver.rtcp_mux = sender.rtcp_mux
        return
    if not receiver.rtcp_mux:
        receiver.rtcp_mux = sender.rtcp_mux
    if opts & {"offer", "require"}:
        receiver.rtcp_mux = True
    elif "demux" in opts:
        receiver.rtcp_mux = False
    receiver.rtcp_mux_override = False
    if sender.rtcp_mux:
        if not receiver.rtcp_mux:
            receiver.rtcp_mux_override = True
            if "reject" in opts:
                sender.rtcp_mux = False
        elif "accept" in opts:
            receiver.rtcp_mux_override = True
        elif "reject" in opts:
            receiver.rtcp_mux_override = True
            sender.rtcp_mux = False
    else:
        receiver.rtcp_mux_override = True


def same_endpoint(side: MediaSide, endpoint: tuple[str, int]) -> bool:
    """Whether `side`'s ports serve `endpoint` (rtpengine's __hunt_endpoint_map); a side not
    yet used for any endpoint takes it, and a zero address is filled in by a real one."""
    if side.endpoint is None:
        side.endpoint = endpoint
        return True
    zero = ("0.0.0.0", "::")
    if side.endpoint[0] in zero or endpoint[0] in zero:
        if side.endpoint[1] != endpoint[1]:
            return False
        if side.endpoint[0] in zero:
            side.endpoint = endpoint
        return True
    return side.endpoint == endpoint


def direction_flags(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, source_address: bool
) -> None:
    """rtpengine 10.5's media send/recv flags after an SDP from s_side's party: the receiving
    side gets the SDP's own direction, the sending side its mirror; a zero address (not replaced
    by the SIP source address, not on a rejected line) stops sending to the sender and
    receiving from the receiver."""
    sends = media.direction in (None, "sendrecv", "sendonly")
    receives = media.direction in (None, "sendrecv", "recvonly")
    zero = media.zero_address and not source_address and not media.rejected
    if media.ice and media.trickle_placeholder:
        zero = False  # not a hold (measured: sec_query_webrtc_offer_only, as relay.call.plan)
    r_side.send, r_side.recv = sends, receives and not zero
    s_side.send, s_side.recv = receives and not zero, sends


def update_protocol(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions, offer: bool
) -> None:
    """rtpengine's __update_media_protocol, on its one protocol per side (printed in the m=
    lines sent to that side's party, shown by query): the sender's side takes its SDP's; if
    that changed, an offer's receiver follows it (an answer's only with transport-protocol
    accept), else keeps what it had; then transport-protocol overrides the receiver's."""
    if s_side.protocol != media.protocol:
        s_side.protocol = media.protocol
        if offer or options.transport_protocol == "accept":
            r_side.protocol = media.protocol
    if options.plain_transport is not None and media.protocol in RTP_PROTOCOLS:
        r_side.protocol = options.plain_transport
    elif options.transport_protocol in SRTP_PROTOCOLS:
        if media.protocol in RTP_PROTOCOLS:
            r_side.protocol = options.transport_protocol


def link(a: MediaSide, b: MediaSide) -> None:
    """Each side's streams forward to the other's (a packet from A leaves towards B).

    RTCP goes where the receiving party takes it (docs/spec/sdp.md §4.1, measured on rtpengine
    10.5): to its RTP port when its side muxes, else to its RTCP port. What arrives on an RTCP
    port (a fallback one included) is RTCP. What arrives on the RTP port of a side that muxes
    is RTCP by its packet type (rtpengine's demux test), so when the other side does not mux,
    the RTP stream gets an `rtcp_sink` (its RTCP stream); on a side that does not mux,
    everything on the RTP port is forwarded as RTP."""
    if a.rtp and b.rtp:
        a.rtp.sink, b.rtp.sink = b.rtp, a.rtp
    for x, y in ((a, b), (b, a)):
        target = y.rtp if y.rtcp_mux else y.rtcp
        if x.rtcp is not None:
            x.rtcp.sink = target
        if x.rtp is not None:
            x.rtp.rtcp_sink = target if x.rtcp_mux and target is not y.rtp else None


def set_peer(
    side: MediaSide, media: OfferedMedia, state: RequestState, source: str | None, learning: str
) -> None:
    """Where packets for this side's party go, from its SDP (or received-from `source`)."""
    options = state.options
    address = source or media.address
    rtcp_port = media.rtcp_port or media.port + 1
    for stream, port in ((side.rtp, media.port), (side.rtcp, rtcp_port)):
        if stream is None:
            continue
        here = address
        if stream.is_rtcp and media.rtcp_port is not None:
            # rtpengine's sdp_streams: a=rtcp naming the RTP port leaves the RTCP endpoint
            # empty; another port (and address, unless SIP-source-address) is taken as is
            if media.rtcp_port == media.port and not media.trickle_placeholder:
                here = None
            elif source is None and media.rtcp_address:
                here = media.rtcp_address
        endpoint = (here, port) if here else None
        if endpoint != stream.sdp_peer:
            was_filled = stream.sdp_peer is not None
            stream.sdp_peer = endpoint
            fam = socket.AF_INET6 if endpoint and ":" in endpoint[0] else socket.AF_INET
            if not (was_filled and endpoint and fam != stream.family):
                # rtpengine's __fill_stream ignores a new endpoint of the other address
                # family than the local socket (only the advertised one changes)
                stream.peer = endpoint
                stream.confirmed = False
        stream.send_blocked = (media.zero_address and source is None) or media.rejected
        stream.learning = learning
        # rtpengine 10.5 takes these from each SDP its party sends, not sticky (asymmetric,
        # a media flag there, only from an m= line that is not rejected).
        stream.strict_source = options.has("strict-source")
        stream.media_handover = options.has("media-handover")
        if not media.rejected:
            stream.asymmetric = options.has("asymmetric")


def refresh_learning(party: Party, until: float, call: Call | None = None) -> None:
    """After a signal, a new source may re-target each stream until `until` (delayed learning);
    the streams learn their owner (tag, and `call`'s id and drop-log notes)."""
    for side in party.medias:
        for stream in side.streams():
            stream.learn_until = until
            stream.tag = party.tag
            if call is not None:
                stream.call_id, stream.notes = call.call_id, call.notes
            if stream.sink is not None:
                stream.filled = True
