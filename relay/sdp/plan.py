"""What the call model decided for one outgoing SDP: the input to `relay.sdp.rewrite`.

The call model (relay.call) owns negotiation state (ports, rtcp-mux, remembered o=/s= values,
ptime seen on the other side); the rewriter only applies these decisions to the text, editing
it in place the way rtpengine 10.5 does (see docs/spec/sdp.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class MediaPlan:
    """Decisions for one m= section, in the order of the input's m= lines."""

    port: int
    """Local RTP port to advertise; 0 leaves a rejected section rejected (port 0 stays 0)."""
    address: str
    """Address to print in c= (and a=rtcp full form): media-address or the advertised address."""
    family: str = "IP4"
    """"IP4" or "IP6": address type printed with `address`."""
    rtcp_port: int | None = None
    """Port for `a=rtcp:`; None omits the line (no-rtcp-attribute)."""
    rtcp_mux: bool = False
    """Emit `a=rtcp-mux` after `a=rtcp:`."""
    full_rtcp_attribute: bool = False
    """`a=rtcp:<port> IN <family> <address>` instead of `a=rtcp:<port>`."""
    protocol: str | None = None
    """Transport protocol for the m= line; None keeps the input's."""
    formats: tuple[str, ...] | None = None
    """Payload types to list, in order; None keeps the input's list (codec strip/mask)."""
    codec_lines: tuple[tuple[int, str, str, tuple[str, ...]], ...] | None = None
    """(payload type, rtpmap encoding, fmtp, rtcp-fb values) to print instead of the input's
    (transcoding negotiation: codecs the input does not have); None prints the input's."""
    ptime: int | None = None
    """`a=ptime:` value to generate; None generates none."""
    direction: str | None = "sendrecv"
    """Direction line to generate; None keeps the original line in place (original-sendrecv)."""
    keep_zero_address: bool = False
    """The input's c= was 0.0.0.0 (hold): print 0.0.0.0 instead of `address`."""
    end_of_candidates: bool = False
    """Emit `a=end-of-candidates` last (the input had it)."""
    strip_extmap: bool = False
    """Drop `a=extmap` lines (strip-extmap)."""
    mid: str | None = None
    """`a=mid` value for a section that has none (generate-mid); the input's own mid wins."""
    input_mid: bool = True
    crypto_lines: tuple[str, ...] = ()
    """Generated a=crypto / a=setup / a=fingerprint lines (no CRLF), after the RTCP lines."""
    keep_ice: bool = False
    """Leave the input's a=ice-ufrag/-pwd/-options and a=candidate lines in place
    (ICE=optional or force-relay on an SDP with ICE, §1.9a)."""
    ice_lines: tuple[str, ...] = ()
    """Own ICE lines (no CRLF), after a=ptime; with a=end-of-candidates when ICE writes it."""
    """Print the input's own a=mid; False prints only `mid` (the call's remembered mid)."""


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """Decisions for the whole SDP."""

    address: str
    """Address for the session c= (and o= with replace origin)."""
    family: str = "IP4"
    media: tuple[MediaPlan, ...] = field(default_factory=tuple)
    replace_origin: bool = False
    replace_session_connection: bool = False
    origin_username: str | None = None
    """Username to write into o= (replace username, later SDPs of a party); None keeps it."""
    origin_version: str | None = None
    """Version to write into o= (replace sdp-version); None keeps it."""
    session_name: str | None = None
    """Value for s= (replace session-name, later SDPs of a party); None keeps it."""
    ice_lite: bool = False
    """Emit a session-level `a=ice-lite` right after `t=` (ICE-lite flag, §1.9a)."""
    loop_protect_id: str | None = None
    """Emit `a=rtpengine:<id>` at the end of the session section (loop-protect)."""
