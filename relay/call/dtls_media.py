"""DTLS-SRTP sessions for the streams facing a party that negotiated DTLS (issue 17,
RFC 5763, 5764; docs/spec/sdp.md §1.12b).

Which role (`SecureState.dtls_role`, rtpengine 10.5's `__dtls_logic`/`__init_stream`):

* we answered a DTLS offer: our a=setup (active: client, passive: server);
* we offered `actpass` and the answer has not come: a server session whose datagrams wait
  (`Transport.held`). A browser answering `active` sends its ClientHello as soon as ICE is up,
  often before its answer reaches us through the SIP proxy; rtpengine answering
  `DTLS=passive` does too, and then takes a ServerHello as an unexpected message (§1.12b). So
  nothing is answered until the answer: `active` releases the held ClientHello to the server
  session, `passive` replaces it by a client session. Keys need the answer's fingerprint
  anyway; a mismatch fails the session (no keys, so no media either way: one log line,
  `Transport.dtls_mismatches`);
* the answer says `passive`: we are the client (a new session, even if the peer's early
  ClientHello had begun one with us as server: rtpengine does that, then resets to server);
  `active`: we stay server.

Re-offers keep the session, as rtpengine does, while the fingerprint and the socket stay (a
re-offer's `actpass` keeps the role already taken). A new fingerprint (the peer's new
certificate) or new local ports make a new session. rtcp-mux: DTLS on the RTP stream only
(rtpengine derives the RTCP keys from it); without mux the RTCP stream runs its own DTLS session,
as each rtpengine packet stream does. A leg without DTLS any more goes back to what SDES/ICE
give it. Keys go from the exporter to the SRTP contexts in the transport; never logged.
"""

from __future__ import annotations

import logging

from relay.call.model import MediaSide
from relay.call.secure import SecureContext
from relay.dtls import DtlsError
from relay.dtls.cert import Fingerprint
from relay.dtls.session import DtlsSession, Role, State
from relay.media.plane import ForwardingPlane
from relay.media.secure import Transport, attach_dtls, detach
from relay.media.stream import Stream

logger = logging.getLogger("relay.calls")

KEEP = "keep"
"""The party re-offered: whatever runs stays until our answer settles it."""

Plan = tuple[Role, Fingerprint | None]


def plan(side: MediaSide, offered_to: bool, offered_by: bool) -> Plan | str | None:
    """Our DTLS role towards `side`'s party and its fingerprint (None: not known yet), KEEP, or
    None without DTLS. `offered_to`: an offer just went to the party; `offered_by`: it just
    sent one (answered later)."""
    state = side.secure
    if not side.port or state.setup_out is None:
        return KEEP if offered_by else None
    role = state.dtls_role
    fp = state.fingerprint_in
    if offered_by and role == "passive" and state.setup_in == "passive" and fp is not None:
        # the party re-offers passive while we are server: our answer can only be active, so
        # the client starts now, as rtpengine 10.5 does (its ClientHello follows the re-offer;
        # the old keys carry media meanwhile: docs/spec/sdp.md §1.12b "Re-offers")
        return Role.CLIENT, fp
    if role is not None:
        if fp is None:
            return KEEP if offered_by else None
        return Role(role), fp
    if state.setup_out != "actpass":
        return None
    if offered_to:
        return KEEP if _running(side) else (Role.SERVER, None)
    if fp is not None:
        return Role.SERVER, fp  # an answer with a fingerprint and no a=setup: it is active
    return None


def _running(side: MediaSide) -> bool:
    return any(
        s.transport is not None and s.transport.dtls is not None
        and s.transport.dtls.state is not State.FAILED
        for s in side.streams()
    )  # fmt: skip


def dtls_streams(side: MediaSide) -> list[Stream]:
    """The RTP stream, and the RTCP one when RTCP is not muxed (a fallback RTCP stream runs
    no DTLS, as in rtpengine)."""
    rtp, rtcp = side.rtp, side.rtcp
    if rtp is None or not rtp.local_port:
        return []
    if side.rtcp_mux or rtcp is None or not rtcp.local_port:
        return [rtp]
    return [rtp, rtcp]


def _keep(session: DtlsSession, role: Role, fp: Fingerprint | None) -> bool:
    """The stream's session stays: same fingerprint (or none known before) and same role. A
    handshake begun in the other role goes too: rtpengine, for one, sends a ClientHello while
    its role is open and then becomes the server its answer says it is (measured)."""
    known = session.remote_fingerprint
    if known is not None and fp is not None and known != fp:
        return False
    return session.role is role


def _wire(stream: Stream, role: Role, fp: Fingerprint | None, ctx: SecureContext,
          plane: ForwardingPlane) -> None:  # fmt: skip
    t = stream.transport
    session = t.dtls if t is not None else None
    if t is not None and session is not None and _keep(session, role, fp):
        if session.remote_fingerprint is None and fp is not None:
            t.remote_fingerprint(fp)  # the answer came after the handshake started
        if t.held and fp is not None:
            t.release_early()  # the answer made us server: now answer its ClientHello
        return
    # a role change with the same peer certificate: the old keys carry media until the new
    # handshake ends (measured on rtpengine 10.5, docs/spec/sdp.md §1.12b "Re-offers")
    same_peer = session is not None and fp is not None and session.remote_fingerprint == fp
    if ctx.certificate is None:
        logger.error("DTLS-SRTP on port %d without a certificate: no media", stream.local_port)
        _keyless(stream)
    else:
        try:
            session = DtlsSession(ctx.certificate, role, fp, ciphers=ctx.dtls_ciphers,
                                  mtu=ctx.dtls_mtu)  # fmt: skip
        except DtlsError as exc:  # the leg asked for SRTP: nothing rather than plaintext
            logger.error("DTLS-SRTP on port %d: %s: no media", stream.local_port, exc)
            _keyless(stream)
        else:
            attach_dtls(stream, session, keep_keys=same_peer, held=fp is None)
    plane.update(stream)


def _keyless(stream: Stream) -> Transport:
    """SRTP without keys: nothing in or out (a muxed RTCP stream, or no certificate)."""
    t = stream.transport
    if t is not None and t.dtls is not None:
        detach(stream)  # RTCP muxed now: its own session goes
        t = None
    if t is None:
        t = stream.transport = Transport(stream)
    t.srtp, t.srtp_in, t.srtp_out, t.keys_from = True, None, None, None
    return t


def _undo(stream: Stream, plane: ForwardingPlane) -> None:
    """DTLS off: back to plain (ICE, if any, is attached again by relay.call.ice_media)."""
    t = stream.transport
    if t is not None and (t.dtls is not None or t.srtp and t.srtp_in is None):
        detach(stream)
        plane.update(stream)


def wire_side(
    side: MediaSide, plane: ForwardingPlane, ctx: SecureContext, *, offered_to: bool = False,
    offered_by: bool = False,
) -> None:
    """Attach, keep or drop DTLS on the streams facing `side`'s party; call after every SDP that
    passed this m= line, for both sides, before relay.call.ice_media."""
    state = side.secure
    decided = plan(side, offered_to, offered_by)
    if decided == KEEP:
        return
    if decided is None or isinstance(decided, str):
        if state.dtls_on:
            for stream in side.streams():
                _undo(stream, plane)
        state.dtls_on = False
        return
    role, fp = decided
    streams = dtls_streams(side)
    for stream in streams:
        _wire(stream, role, fp, ctx, plane)
    for stream in side.streams():
        if all(stream is not s for s in streams):
            _keyless(stream)  # muxed RTCP: never plaintext on an SRTP leg
            plane.update(stream)
    state.dtls_on = True
