"""What one SDP body says, reduced to what the call model negotiates with (plain values).

`relay.ng.sdp_view.summarize` fills these from a parsed SDP; the call model never looks at SDP
text itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class OfferedMedia:
    """One m= section as its sender described it."""

    type: str
    port: int
    protocol: str
    formats: tuple[str, ...]
    address: str | None
    """Effective connection address (media c=, else session c=); None if absent."""
    family: str = "IP4"
    rtcp_port: int | None = None
    rtcp_address: str | None = None
    rtcp_mux: bool = False
    direction: str | None = None
    """sendrecv/sendonly/recvonly/inactive from media or session level; None if absent."""
    ptime: int | None = None
    ice: bool = False
    crypto: bool = False
    fingerprint: bool = False
    end_of_candidates: bool = False
    mid: str | None = None
    crypto_values: tuple[str, ...] = ()
    """Values of the section's `a=crypto` lines, in order (SDES)."""
    setup: str | None = None
    """`a=setup` value (media, else session level); None if absent."""
    ice_trickle: bool = False
    """`a=ice-options:trickle` at media or session level."""
    fingerprint_value: str | None = field(default=None, repr=False)
    """`a=fingerprint` value (media, else session level)."""
    ice_ufrag: str | None = None
    ice_pwd: str | None = field(default=None, repr=False)
    """`a=ice-ufrag` / `a=ice-pwd` values (media, else session level)."""
    candidates: tuple[str, ...] = ()
    """The section's `a=candidate` values, in order."""
    ice_lite: bool = False
    """Session-level `a=ice-lite` (RFC 8839 §5.3): the sender is a lite agent."""
    ice_lite_media: bool = False
    """`a=ice-lite` inside this m= section: the only place rtpengine 10.5 reads it
    (docs/spec/ng-protocol.md §4.4, `ICE-lite peer`)."""
    codec_names: dict[str, str] = field(default_factory=dict)
    """Payload type → "encoding/clock[/channels]" (rtpmap, or RFC 3551 for static types)."""
    codec_fmtp: dict[str, str] = field(default_factory=dict)
    """Payload type → its a=fmtp value (transcoding negotiation re-prints them)."""
    codec_rtcp_fb: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Payload type → its a=rtcp-fb values."""

    @property
    def zero_address(self) -> bool:
        return self.address in ("0.0.0.0", "::")

    @property
    def rejected(self) -> bool:
        return self.port == 0

    @property
    def trickle_placeholder(self) -> bool:
        """0.0.0.0 (or ::) port 9: a trickle-ICE client's "no candidate yet" (RFC 8840 §4.1.1):
        rtpengine takes it as an address, not as a hold, when the section has ICE."""
        return self.port == 9 and self.zero_address


@dataclass(frozen=True, slots=True)
class OfferedSession:
    """The whole SDP: origin fields and the media sections in order."""

    origin_username: str
    origin_version: str
    session_name: str
    media: tuple[OfferedMedia, ...]
    rtpengine_ids: tuple[str, ...] = ()
    """Values of `a=rtpengine:` lines (loop detection)."""
