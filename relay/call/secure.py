"""SDES, DTLS and ICE lines of one outgoing m= section, as rtpengine 10.5 writes them
(docs/spec/sdp.md §1.9a, §1.12, §1.12a, §1.12b), and the per-side state the media side needs.

Always on: every Registry gets a `SecureContext` (the daemon's certificate fingerprint and
ICE foundations). SDES media is wired by relay.call.sdes_media.
Pure apart from the injected `rng` (keys, ufrag/pwd); never logs keys or ice-pwd.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from relay.call.offered import OfferedMedia
from relay.call.options import CallOptions
from relay.dtls import FingerprintError
from relay.dtls.cert import DtlsCertificate, Fingerprint, parse_fingerprint
from relay.dtls.session import DEFAULT_CIPHERS, DEFAULT_MTU
from relay.ice import IceAgent
from relay.ice.own_lines import (
    CandidateKind,
    LocalInterface,
    OwnIce,
    new_credentials,
    render_own_ice,
)
from relay.ice.sdp import Candidate, IceSdpError, parse_attribute
from relay.sdp.plan import MediaPlan
from relay.srtp import sdes
from relay.srtp.suites import SUITES, Suite

SRTP_PROTOCOLS = frozenset({"RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"})
_PARAM_FLAGS = {
    "unencrypted_srtcp": "UNENCRYPTED_SRTCP",
    "unencrypted_srtp": "UNENCRYPTED_SRTP",
    "unauthenticated_srtp": "UNAUTHENTICATED_SRTP",
}


@dataclass(slots=True)
class SecureState:
    """What one side's party was told and told us (kept across re-offers, as rtpengine does)."""

    local_keys: dict[str, bytes] = field(default_factory=dict, repr=False)
    """Suite name → our key||salt offered/answered to this party (one per suite, kept)."""
    sdes_out: tuple[sdes.Crypto, ...] = field(default=(), repr=False)
    """The a=crypto lines last sent to this party."""
    sdes_in: tuple[sdes.Crypto, ...] = field(default=(), repr=False)
    """The valid a=crypto lines this party last sent (its keys)."""
    accepted: sdes.Crypto | None = field(default=None, repr=False)
    """Our offered line the party's answer accepted (same tag and suite): offered first, with
    its key, in later offers."""
    sdes_applied: tuple[sdes.Crypto, sdes.Crypto | None] | None = field(default=None, repr=False)
    """(party's line, ours) whose SRTP contexts the streams facing this party run
    (relay.call.sdes_media; ours None: nothing is sent to it); None: plain."""
    setup_out: str | None = None
    """Our a=setup towards this party (actpass in offers; active/passive: our DTLS role)."""
    fingerprint_in: Fingerprint | None = None
    """The party's certificate fingerprint (its DTLS certificate must match it)."""
    setup_in: str | None = None
    prior_role: str | None = None
    """Our DTLS role towards this party before its latest SDP (answer_setup keeps passive)."""
    ice_credentials: tuple[str, str] | None = field(default=None, repr=False)
    """Our (ufrag, pwd) towards this party, drawn once, kept across re-offers; drawn again
    when we answer its ICE restart (`ice_restarted`)."""
    ice_restarted: bool = False
    """The party's latest SDP changed its ufrag/pwd (an ICE restart, RFC 8445 §9): our answer
    to it gets new ones too (measured on rtpengine 10.5, docs/spec/sdp.md §1.12c)."""
    ice_remote: bool = False
    """The party does ICE (an a=ice-ufrag in its last SDP)."""
    remote_ice: tuple[str, str] | None = field(default=None, repr=False)
    """The party's (ufrag, pwd)."""
    remote_lite: bool = False
    """The party's last SDP said `a=ice-lite`: we control (RFC 8445 §6.1.1)."""
    lite_peer: bool = False
    """`ICE-lite peer` in query: the party's last SDP had ICE and `a=ice-lite` in this m=
    section (rtpengine 10.5 ignores the session-level one there; measured,
    docs/spec/ng-protocol.md §4.4)."""
    remote_candidates: tuple[Candidate, ...] = ()
    """The party's valid candidates (unparsable ones are ignored, as rtpengine does)."""
    ice_passed_on: bool = False
    """The party's own ICE lines went on unchanged (ICE=optional/force-relay on its offer):
    the answer to it then carries rtpengine's candidates without ufrag/pwd (measured)."""
    sdes_declined: bool = False
    """We answered this party's a=crypto with DTLS only (§1.12d): query shows no `SDES`."""
    role_without_dtls: str | None = None
    """Our a=setup had DTLS=off not dropped it (both offered, §1.12d): query still shows
    `DTLS role <x>` without `DTLS-SRTP` (measured: sec_query_both_offered_dtls_off)."""
    heard_last: bool = False
    """The latest SDP on this leg came from the party (else from us): `query`'s DTLS flags
    follow the latest one (docs/spec/ng-protocol.md §4.4)."""
    dtls_on: bool = False
    """The streams facing this party run DTLS-SRTP (relay.call.dtls_media)."""
    ice_out: bool = False
    """The last SDP sent to this party carried our own ufrag/pwd: the streams facing it run an
    ICE agent (relay.call.ice_media)."""
    ice_components: int = 2
    """Components in our ICE lines to this party (1: rtcp-mux required)."""
    ice_lite_self: bool = False
    """That SDP said `a=ice-lite` (ICE-lite flag): our agent towards this party is lite."""
    ice_agent: IceAgent | None = field(default=None, repr=False)
    """The agent the streams facing this party run (relay.call.ice_media), kept across
    re-offers; None without ICE towards this party."""

    @property
    def dtls_role(self) -> str | None:
        """Our DTLS role towards this party once settled: "active" (client) or "passive"
        (server); None while only actpass was offered and not answered, or without DTLS."""
        if self.setup_out in ("active", "passive"):
            return self.setup_out
        if self.setup_out == "actpass" and self.setup_in in ("active", "passive"):
            return "passive" if self.setup_in == "active" else "active"
        return None


@dataclass(frozen=True, slots=True)
class SecureContext:
    """Daemon-wide inputs: the certificate's fingerprint per hash, ICE foundations, rng."""

    fingerprint: Callable[[str], str]
    """Hash name → `<hash> <HEX:PAIRS>` (relay.dtls.cert Fingerprint.render)."""
    interfaces: Sequence[tuple[str, str]]
    """(foundation, advertised address) per local interface address, in interface order."""
    rng: random.Random
    dtls_passive: bool = False
    dtls_mtu: int = DEFAULT_MTU
    """`dtls-mtu`: what each DtlsSession packs a flight into."""
    dtls_ciphers: str = DEFAULT_CIPHERS
    """`dtls-ciphers`: the OpenSSL cipher list each DtlsSession offers/accepts."""
    certificate: DtlsCertificate | None = None
    """The daemon's DTLS certificate (the one `fingerprint` names); None: DTLS legs get no
    media (tests of the SDP side only)."""
    interfaces6: Sequence[tuple[str, str]] = ()
    """The same for candidates of a side on IPv6: rtpengine 10.5 keeps a list per family, each
    address with a foundation of its own in each (measured, docs/spec/sdp.md §1.9a); empty:
    `interfaces`."""


@dataclass(frozen=True, slots=True)
class SecureLines:
    crypto: tuple[str, ...] = ()
    """a=crypto, a=setup, a=fingerprint (after a=rtcp)."""
    ice: tuple[str, ...] = ()
    """Own ICE lines (after a=ptime), a=end-of-candidates included when ICE writes it."""


def parse_cryptos(values: Sequence[str]) -> tuple[sdes.Crypto, ...]:
    """The valid a=crypto lines; rtpengine ignores (logs) those it cannot parse."""
    out = []
    for v in values:
        try:
            out.append(sdes.parse(v))
        except sdes.SdesError:
            continue
    return tuple(out)


def _key(state: SecureState, suite: Suite, rng: random.Random) -> bytes:
    key = state.local_keys.get(suite.name)
    if key is None:
        key = rng.randbytes(suite.inline_len)
        state.local_keys[suite.name] = key
    return key


def _params(base: tuple[str, ...], flags: Sequence[str]) -> tuple[str, ...]:
    extra = [_PARAM_FLAGS[f] for f in flags if f in _PARAM_FLAGS]
    return base + tuple(p for p in extra if p not in base)


def settle_answer(state: SecureState, media: OfferedMedia) -> None:
    """The party of `state` answered our SDES offer (measured, sec_sdes_reoffer_*): a line
    naming one of ours (same tag and suite) is accepted and keeps its key, the other suites get
    new keys; a line naming a tag with another suite discards all our keys; no valid line
    changes nothing."""
    answered = parse_cryptos(media.crypto_values)
    if not answered or not state.sdes_out:
        return
    first = answered[0]
    ours = next((c for c in state.sdes_out if c.tag == first.tag), None)
    if ours is not None and ours.suite == first.suite:
        state.accepted = ours
        state.local_keys = {ours.suite.name: ours.key_salt}
    else:
        state.accepted = None
        state.local_keys = {}


def offer_cryptos(
    offered: tuple[sdes.Crypto, ...], state: SecureState, flags: Sequence[str],
    rng: random.Random,
) -> tuple[sdes.Crypto, ...]:
    """§1.12/§1.12a: offered lines first (same key), else the line the party accepted before,
    then every other suite with our keys."""
    if "off" in flags:
        return ()
    if not offered and state.accepted is not None:
        offered = (state.accepted,)
    dropped = {f[3:] for f in flags if f.startswith("no-")}
    lifetime = "lifetime" in flags
    out: list[sdes.Crypto] = []
    for c in offered:
        if c.suite.name in dropped:
            continue
        kept = sdes.for_rtpengine_offer(c, lifetime=lifetime)
        out.append(sdes.Crypto(kept.tag, kept.suite, kept.key_salt, kept.lifetime, kept.mki,
                               _params(kept.params, flags)))
    seen = {c.suite.name for c in offered}
    tag = out[-1].tag if out else 0
    for suite in SUITES:
        if suite.name in seen or suite.name in dropped:
            continue
        tag += 1
        out.append(sdes.Crypto(tag, suite, _key(state, suite, rng),
                               "2^31" if lifetime else None, None, _params((), flags)))
    return tuple(out)


def answer_cryptos(
    answered: tuple[sdes.Crypto, ...], offerer: SecureState, rng: random.Random
) -> tuple[sdes.Crypto, ...]:
    """The answer's a=crypto: the answerer's own line passed on under the tag the offerer gave
    that suite; else (no line, or a suite the offerer did not offer) the offer's first suite
    under its tag with our key (P2; §1.12c). Measured: SDES flags (even `off`) on the answer do
    not apply here; `sdes_in` has lost the suites the offer's `SDES-no-` named."""
    if not offerer.sdes_in:
        return ()  # the offerer did not offer SDES (a DTLS browser): none back (measured)
    if answered:
        line = sdes.for_rtpengine_offer(answered[0])
        own = next((c for c in offerer.sdes_in if c.suite == line.suite), None)
        if own is not None:
            return (dataclasses.replace(line, tag=own.tag),)
    first = offerer.sdes_in[0]
    return (sdes.Crypto(first.tag, first.suite, _key(offerer, first.suite, rng)),)


def answer_setup(
    offer_setup: str | None, dtls: str | None, dtls_passive: bool, current: str | None = None
) -> str | None:
    """§1.12b table: our a=setup towards a DTLS offerer (None: no setup/fingerprint).
    `current`: our role towards it so far; passive stays passive on an actpass re-offer, even
    with DTLS=active (measured, §1.12b "Re-offers")."""
    if offer_setup == "actpass":
        if current == "passive":
            return "passive"
        return "passive" if dtls == "passive" or (dtls_passive and dtls != "active") else "active"
    if offer_setup == "active":
        return "passive"
    if offer_setup == "passive":
        return "active"
    return None


def _dtls_lines(setup: str | None, options: CallOptions, ctx: SecureContext) -> list[str]:
    if setup is None:
        return []
    hash_name = (options.dtls_fingerprint or "sha-256").lower()
    return [f"a=setup:{setup}", f"a=fingerprint:{ctx.fingerprint(hash_name)}"]


def crypto_lines(
    state: SecureState, protocol: str, media: OfferedMedia, options: CallOptions, offer: bool,
    ctx: SecureContext, answered: OfferedMedia | None = None,
) -> tuple[str, ...]:
    """a=crypto/a=setup/a=fingerprint for the party of `state` (in an answer, the offerer's
    side; `answered`: in an offer, that party's last answer for this line, if any)."""
    received = parse_cryptos(media.crypto_values)
    # OSRTP (RFC 8643): a plain RTP/AVP line offered with a=crypto lines, made by the
    # OSRTP-offer flag or passed on from an OSRTP offerer (measured: with or without flags)
    incoming_osrtp = media.protocol == "RTP/AVP" and bool(received)
    osrtp = offer and protocol == "RTP/AVP" and ("offer" in options.osrtp or incoming_osrtp)
    state.heard_last = False
    state.sdes_declined, state.role_without_dtls = False, None
    # answering an offerer whose RTP/AVP line had a=crypto (OSRTP): SDES back when the answerer
    # sent a=crypto, or with OSRTP-accept on the answer (measured, docs/spec/sdp.md §1.12c)
    osrtp_answer = (
        not offer and protocol == "RTP/AVP" and bool(state.sdes_in)
        and (bool(received) or "accept" in options.osrtp)
    )
    if protocol not in SRTP_PROTOCOLS and not osrtp and not osrtp_answer:
        state.sdes_out, state.setup_out = (), None  # plain towards this party now
        return ()
    flags = options.sdes
    if offer:
        passthrough = received if media.protocol in SRTP_PROTOCOLS or incoming_osrtp else ()
        state.sdes_out = offer_cryptos(passthrough, state, flags, ctx.rng)
        # measured: a party that answered SDES without a fingerprint gets no DTLS again
        sdes_only = answered is not None and answered.crypto and not answered.fingerprint
        setup = None if options.dtls == "off" or sdes_only else "actpass"
    else:
        setup = answer_setup(state.setup_in if state.fingerprint_in else None,
                             options.dtls, ctx.dtls_passive, state.prior_role)
        if setup is not None and state.sdes_in and options.dtls == "off":
            # both offered, DTLS=off on the answer: SDES only (§1.12d)
            state.role_without_dtls, setup = setup, None
        state.sdes_declined = setup is not None and bool(state.sdes_in)
        # both offered (a=crypto, a=fingerprint and a=setup): DTLS only, no a=crypto (§1.12d)
        state.sdes_out = () if setup is not None else answer_cryptos(received, state, ctx.rng)
    state.setup_out = setup
    pad = "pad" in flags
    lines = [f"a=crypto:{sdes.render(c, pad=pad and c.key_salt in state.local_keys.values())}"
             for c in state.sdes_out]
    return tuple(lines + _dtls_lines(setup, options, ctx))


def remember_received(
    state: SecureState, media: OfferedMedia, sdes_flags: Sequence[str] = ()
) -> None:
    """Keep what the sending party said (its keys, fingerprint, setup, ICE); `sdes_flags`: an
    offer's SDES flags, whose `no-<suite>` drops that suite of the party's too (§1.12a, §1.12c:
    its answer then has no line for it)."""
    dropped = {f[3:] for f in sdes_flags if f.startswith("no-")}
    state.sdes_in = tuple(
        c for c in parse_cryptos(media.crypto_values) if c.suite.name not in dropped
    )
    state.heard_last = True
    state.fingerprint_in = None
    if media.fingerprint_value is not None:
        try:
            state.fingerprint_in = parse_fingerprint(media.fingerprint_value)
        except FingerprintError:
            pass  # an unusable fingerprint counts as none
    state.prior_role = state.dtls_role or state.prior_role
    state.setup_in = media.setup
    state.ice_remote = media.ice
    if media.ice_ufrag is not None and media.ice_pwd is not None:
        new = (media.ice_ufrag, media.ice_pwd)
        state.ice_restarted = state.remote_ice is not None and state.remote_ice != new
        state.remote_ice = new
    state.remote_candidates = parse_candidates(media.candidates)
    state.remote_lite = media.ice_lite or media.ice_lite_media
    state.lite_peer = media.ice and media.ice_lite_media


def parse_candidates(values: Sequence[str]) -> tuple[Candidate, ...]:
    """The valid `a=candidate` values as `Candidate`s (others ignored)."""
    out = []
    for v in values:
        try:
            parsed = parse_attribute(f"a=candidate:{v}")
        except IceSdpError:
            continue
        if isinstance(parsed, Candidate):
            out.append(parsed)
    return tuple(out)


FORCE_RELAY = frozenset({"force-relay", "force_relay", "force relay"})
FORCING = frozenset({"force", "optional"}) | FORCE_RELAY
"""ICE options that write rtpengine's ICE whatever the input says."""
ICE_LITE_OFFER = frozenset({"forward", "offer", "both"})
ICE_LITE_ANSWER = frozenset({"backward", "answer", "both"})


def ice_lite(
    options: CallOptions, offer: bool, media: Sequence[MediaPlan],
    receiving: Sequence[SecureState] = (),
) -> bool:
    """Session-level `a=ice-lite` (measured: forward/offer/both in an offer, backward/both in
    the answer, and in the answer after `both` on the offer: `receiving`'s sides are lite
    already), only where rtpengine writes ICE lines of its own."""
    values = ICE_LITE_OFFER if offer else ICE_LITE_ANSWER
    lite = options.ice_lite in values or (
        not offer and any(s.ice_lite_self for s in receiving)
    )
    return lite and any(m.ice_lines for m in media)


def wants_ice(
    media: OfferedMedia, options: CallOptions, offer: bool, other: OfferedMedia | None
) -> bool:
    """Does rtpengine write its own ICE towards the receiving party? `other`: that party's last
    SDP for this line (in an answer: its offer; in an offer: its answer, if it answered).
    Measured: a party that answered without ICE gets none in re-offers, one that answered
    with ICE gets it even when the new offer has none (unless ICE=remove/force)."""
    if options.ice == "remove":
        return False
    if options.ice in FORCING:
        return True
    if offer:
        return other.ice if other is not None else media.ice
    return other is not None and other.ice


Listed = Callable[[], Sequence[tuple[str, tuple[int, int]] | None]]
"""The addresses our candidates name, in interface order: (advertised address, RTP and RTCP
port) of each, None where the side's own address and ports go (relay.call.streams
`list_ice_addresses` allocates the others' sockets when called)."""


def _candidate_interfaces(
    ctx: SecureContext, address: str, ports: tuple[int, int], listed: Listed | None,
    family: str,
) -> tuple[LocalInterface, ...]:
    """rtpengine lists every address of the logical interface, each with its own ports, the
    side's family first (docs/spec/sdp.md §1.9a); foundation per advertised address and family
    of the side."""
    table = ctx.interfaces6 if family == "IP6" and ctx.interfaces6 else ctx.interfaces
    out = []
    for entry in (listed() if listed is not None else None) or [None]:
        adv, own_ports = (address, ports) if entry is None else entry
        own = [f for f, a in table if a == adv] or [table[0][0]]
        out.append(LocalInterface(own[0], adv, own_ports))
    return tuple(out)


def passes_ice_on(media: OfferedMedia, options: CallOptions, offer: bool) -> bool:
    """ICE=optional/force-relay on an offer with ICE: its ICE lines stay (§1.9a)."""
    return offer and media.ice and (options.ice == "optional" or options.ice in FORCE_RELAY)


def _ice_kind(
    state: SecureState, media: OfferedMedia, options: CallOptions, offer: bool
) -> tuple[CandidateKind, bool]:
    """Candidate kind and whether our own ufrag/pwd are written (§1.9a, measured)."""
    if not offer:
        return CandidateKind.HOST, not state.ice_passed_on
    relay = options.ice in FORCE_RELAY
    if media.ice and (relay or options.ice == "optional"):
        return (CandidateKind.RELAY if relay else CandidateKind.OPTIONAL), False
    return (CandidateKind.RELAY if relay else CandidateKind.HOST), True


def ice_lines(
    state: SecureState, offerer_media: OfferedMedia | None, media: OfferedMedia,
    options: CallOptions, offer: bool, ports: tuple[int, int], mux_only: bool,
    ctx: SecureContext, address: str = "", listed: Listed | None = None, family: str = "IP4",
) -> tuple[str, ...]:
    """Own ICE lines towards the party of `state` (§1.9, §1.9a), or none (`offerer_media`:
    see `wants_ice`'s `other`); `listed` is called only when candidates are written."""
    if not wants_ice(media, options, offer, offerer_media):
        state.ice_out = False
        return ()
    if state.ice_credentials is None or (not offer and state.ice_restarted):
        state.ice_credentials = new_credentials(ctx.rng)
    state.ice_restarted = False
    ufrag, pwd = state.ice_credentials
    trickle = options.has("trickle-ICE") or (
        not offer and offerer_media is not None and offerer_media.ice_trickle
    )
    kind, own_credentials = _ice_kind(state, media, options, offer)
    own = OwnIce(
        ufrag=ufrag,
        pwd=pwd,
        interfaces=_candidate_interfaces(ctx, address, ports, listed, family),
        components=1 if mux_only else 2,
        kind=kind,
        credentials=own_credentials,
        trickle=trickle,
    )
    state.ice_out, state.ice_components = own_credentials, own.components
    return tuple(render_own_ice(own))
