"""Call → Party (one per SIP tag) → MediaSide (one per m= line) → Stream, as rtpengine models it.

Plain mutable records; the operations live in relay.call.registry and its helpers. A
MediaSide's streams face its own party: that party sends to (and receives from)
`rtp.local_port`, the port advertised *to* it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relay.call.offered import OfferedMedia
from relay.call.options import CallOptions
from relay.call.rng import CallRandom, new_seed
from relay.call.secure import SecureContext, SecureState
from relay.media.reports import Reports
from relay.media.stream import Stream
from relay.media.transcoder import Transcoder
from relay.ports import PortPool
from relay.sdp.codec_store import Store
from relay.transcode.plan import DirectionPlan

if TYPE_CHECKING:
    from relay.call.playback import Player


def plus_one(address: tuple[str, int] | None) -> tuple[str, int] | None:
    """The address one port up (an RTCP endpoint next to its RTP one)."""
    return None if address is None else (address[0], address[1] + 1)


@dataclass(slots=True)
class IceAddress:
    """One address of the side's logical interface listed in our ICE candidates towards its
    party (docs/spec/sdp.md §1.9a): `index` in the interface order (local preference
    65535 − index); `rtp`/`rtcp` None for the address the side's own streams are on."""

    index: int
    advertised: str
    rtp: Stream | None = None
    rtcp: Stream | None = None
    pool: PortPool | None = None

    def streams(self) -> list[Stream]:
        return [s for s in (self.rtp, self.rtcp) if s is not None]


@dataclass(slots=True)
class MediaSide:
    index: int
    type: str
    protocol: str
    pool: PortPool | None = None
    rtp: Stream | None = None
    rtcp: Stream | None = None
    sdp: OfferedMedia | None = None
    """What this side's party last advertised for this m= line."""
    advertised: str = ""
    """Address printed in SDP sent to this side's party."""
    family: str = "IP4"
    initialized: bool = False
    endpoint: tuple[str, int] | None = None
    """The other party's SDP endpoint these ports were allocated for (rtpengine's endpoint
    map); None while the side waits for its first one (allocated as the sender's side)."""
    send: bool = True
    recv: bool = True
    """rtpengine's media SEND/RECV flags (its point of view: it sends to / receives from this
    side's party), set on both sides by every SDP that passes this m= line, either way."""
    sdp_was_offer: bool = False
    """This side's party sent `sdp` in an offer (an answer may then only use its codecs)."""
    sent_formats: tuple[str, ...] | None = None
    """Payload types this side's last offer passed on (after codec strip/mask)."""
    codecs_touched: bool = False
    """This side's last offer had codecs stripped or masked (rtpengine's codec tracker runs)."""
    kept_formats: tuple[str, ...] = ()
    """Payload types of that offer still usable by its party (stripped ones gone, masked kept)."""
    offered_names: dict[str, str] = field(default_factory=dict)
    """That offer's codec under each payload type (an answer's same number must name it)."""
    inject_dtmf: bool = False
    """An offer from this side's party had `inject-DTMF`: media towards it is always transcoded
    so `play DTMF` can put events in (rtpengine marks the monologue; docs/spec/ng-protocol.md
    §9.4)."""
    transcoding: bool = False
    """rtpengine's media flag "transcoding": packets from this side's party are transcoded
    (some received payload type has a transcoding handler)."""
    codec_store: Store | None = None
    """rtpengine's codec list for this side (relay.sdp.codec_store), kept once transcoding
    negotiation ran on the line; None on plain calls (relay.sdp.codecs decides there)."""
    codec_plan: DirectionPlan | None = None
    """What the media side does with packets from this side's party towards the other
    (relay.transcode.plan); None: plain forwarding."""
    transcoder: Transcoder | None = None
    """The running chain for `codec_plan` (relay.call.transcode_media), kept while the plan
    stays the same, so a re-offer does not restart the output's SSRC and sequence."""
    offer_options: CallOptions | None = None
    """The options of the last offer from this side's party (an answer needing transcoding
    replays that offer's codec flags)."""
    ptime_override: bool = False
    """rtpengine's PTIME_OVERRIDE: a ptime=/ptime-reverse= flag set this side's ptime."""
    portless: tuple[str | None, bool, bool] = (None, False, False)
    """For a side without ports: the address its party's SDP gave (or the SIP source), and the
    strict-source / media-handover flags of that SDP (query shows them on port-less streams)."""
    asymmetric: bool = False
    """The `asymmetric` flag of the last non-rejected SDP from this side's party."""
    ice: bool = False
    """The party's SDP for this line does ICE (rtpengine's shared ICE flag, with ICE=remove)."""
    unidirectional: bool = False
    """The `unidirectional` flag of the last non-rejected SDP from this side's party."""
    trickle_ice: bool = False
    """rtpengine's media flag "trickle ICE": an offer to this side's party had `trickle-ICE`."""
    ice_controlling: bool = False
    """This side received the first offer (rtpengine marks it "ICE controlling")."""
    mid: str | None = None
    """The m= line's a=mid as first offered (rtpengine prints it in every later SDP, both ways)."""
    ptime: int | None = None
    """a=ptime printed towards this side's party: the last one either party gave."""
    released_pair: bool = False
    """Those released ports were an RTP/RTCP pair."""
    released_port: int = 0
    """RTP port this side had before a rejection released it (taken again if still free)."""
    rtcp_mux: bool = False
    """rtpengine's MEDIA_FLAG_RTCP_MUX for this side (`__rtcp_mux_logic`): what `query` shows as
    the media flag "rtcp-mux" and the streams' "RTCP" / "fallback RTCP" flags."""
    mux_require: bool = False
    """The current offer to this side's party requires rtcp-mux (flag, or mux already in use)."""
    rtcp_mux_override: bool = False
    """rtpengine's MEDIA_FLAG_RTCP_MUX_OVERRIDE: the answer does not decide the offerer's mux."""
    rtcp_fallback: bool = False
    """Only an RTP port was allocated (an offer with rtcp-mux=require): RTCP is muxed on it,
    `rtcp` is None, and `query` shows rtpengine's "fallback RTCP" stream with local port 0."""
    rtcp_gen: bool = False
    """rtpengine's MEDIA_FLAG_RTCP_GEN: the relay writes RTCP reports to this side's party."""
    reports: Reports | None = None
    """Its generate-RTCP state (relay.call.rtcp_media), kept across port re-allocations."""
    secure: SecureState = field(default_factory=SecureState)
    """SDES keys, DTLS setup/fingerprint and ICE credentials towards and from this side's party
    (the media side reads them)."""
    ice_addresses: tuple[IceAddress, ...] = ()
    """Every address of the logical interface our last SDP to this party listed candidates
    for, in interface order (one entry is the side's own streams, the others have sockets of
    their own: relay.call.streams `list_ice_addresses`); () without our candidates."""

    @property
    def port(self) -> int:
        return self.rtp.local_port if self.rtp else 0

    def streams(self) -> list[Stream]:
        return [s for s in (self.rtp, self.rtcp) if s is not None]

    def all_streams(self) -> list[Stream]:
        """`streams()`, then those of the other ICE addresses (sockets of their own)."""
        return self.streams() + [s for a in self.ice_addresses for s in a.streams()]


@dataclass(slots=True)
class Party:
    """One SIP tag's side of the dialogue (rtpengine's monologue)."""

    tag: str
    created: float
    label: str | None = None
    via_branch: str | None = None
    other: Party | None = None
    medias: list[MediaSide] = field(default_factory=list)
    origin_username: str | None = None
    session_name: str | None = None
    sdp_version: int | None = None
    """o= username, s= and version of the first SDP sent *to* this party (rtpengine keeps them
    on the receiving monologue)."""
    last_out: str | None = None
    """The last SDP sent to this party under replace: sdp-version."""
    former: list[Party] = field(default_factory=list)
    """Earlier answerers this party was paired with before a forked answer replaced them
    (newest first); rtpengine keeps receiving from them, and `query` lists them."""
    block_media: bool = False
    silence_media: bool = False
    block_dtmf: bool = False
    """`block media`, `silence media`, `block DTMF` for media *from* this party
    (docs/spec/ng-protocol.md §9.5-9.7; relay.call.media_gates puts them on the streams)."""
    player: Player | None = None
    """Its media player (relay.call.playback.Player) once `play media` named it."""

    def subscriptions(self) -> list[Party]:
        """The parties this one receives media from, as rtpengine's `subscriptions` lists them:
        the current partner (unless that partner has since paired with someone else), then the
        former ones."""
        other = self.other
        current = [other] if other is not None and other.other is self else []
        return current + [p for p in self.former if p is not other]


@dataclass(slots=True)
class Call:
    call_id: str
    created: float
    last_signal: float
    parties: dict[str, Party] = field(default_factory=dict)
    untagged: list[Party] = field(default_factory=list)
    answered: bool = False
    deleted_at: float | None = None
    record: bool = False
    metadata: str | None = None
    foreign: bool = False
    record_paused: bool = False
    """`pause recording` (rtpvault): the recording stays open but no media is written."""
    block_media: bool = False
    silence_media: bool = False
    block_dtmf: bool = False
    """The call-wide `block media`, `silence media`, `block DTMF` (no party named)."""
    notes: set[str] = field(default_factory=set)
    """Causes of dropped secure media already logged for this call (relay.media.secure: one
    log line per call and cause); shared with its streams as `Stream.notes`."""
    seed: bytes = field(default_factory=new_seed)
    """32 bytes: os.urandom at creation, or the stored document's on a restore
    (docs/design/redis-state.md)."""
    restored: dict[str, Any] | None = None
    """The document's `extra` when this call was rebuilt from Redis (else None); set before
    the first replayed request, so CallCreated listeners see it (docs/design/redis-state.md)."""
    rng: CallRandom = field(init=False, repr=False, compare=False)
    """The call's own RNG, `CallRandom(seed)`: every random draw of its requests uses it."""
    secure_context: SecureContext | None = field(default=None, repr=False, compare=False)
    """The daemon's SecureContext with `rng` = this call's (made once: relay.call.registry)."""

    def __post_init__(self) -> None:
        self.rng = CallRandom(self.seed)

    def all_parties(self) -> list[Party]:
        return [*self.parties.values(), *self.untagged]

    def streams(self) -> list[Stream]:
        return [s for p in self.all_parties() for m in p.medias for s in m.streams()]
