"""SDES keys from the SDP to the media plane (issue 17): once an answer has settled
a media line, the streams facing a party that negotiated SDES get SRTP contexts; the others go
back to plain.

Which key goes where (docs/spec/sdp.md §1.12, §1.12c; relay.call.secure): a side's
`SecureState` holds the a=crypto lines its party sent (`sdes_in`) and those we sent it
(`sdes_out`). The answer picks one suite under one tag: the pair of lines with that tag and
suite is the leg's crypto, whichever party offered. SDES offerer: `sdes_in` are its offered
lines, `sdes_out` our one answer line. SDES answerer: `sdes_in` is its one answer line,
`sdes_out` our offered lines. Inbound (what the party sends us) uses the party's key, outbound
(what we send it) ours. A side's streams face its own party (relay.media.userspace: a stream
receives from the party of its side and its sink sends to the other party), so the contexts
go on that side's RTP and RTCP streams.

Contexts are made again only when the keys change (an unchanged re-answer keeps the rollover
counters and replay windows). An MKI on a line goes into the packets keyed by it: ours is
written into what we send, the party's length is cut from what it sends, value unchecked, as
rtpengine 10.5 does (docs/spec/sdp.md §1.12d); lifetimes are not enforced (ditto). Keys that do
not open leave the leg without media rather than sending it plaintext; one error line. Never
logs keys.
"""

from __future__ import annotations

import logging

from relay.call.model import MediaSide
from relay.call.secure import SecureState
from relay.media.plane import ForwardingPlane
from relay.media.secure import Transport, attach_sdes, detach
from relay.media.stream import Stream
from relay.srtp import SessionParams, SrtpContext, SrtpError, open_context
from relay.srtp.sdes import Crypto, mki_bytes

logger = logging.getLogger("relay.calls")

Keys = tuple[Crypto, Crypto | None]
"""(the party's line, our line): same tag and suite; ours None when the answer paired none."""


def settled_keys(state: SecureState) -> Keys | None:
    """The party's a=crypto line and ours that the answer paired (same tag and suite), or None
    when this leg is plain (no SDES either way). Lines both ways that do not pair (an answer
    naming a suite under a tag we gave another suite): the party's first line alone, so what
    it sends is decrypted and nothing is sent to it, as rtpengine 10.5 does (§1.12c, measured)
    rather than plaintext to a party that asked for SRTP."""
    for theirs in state.sdes_in:
        for ours in state.sdes_out:
            if ours.tag == theirs.tag and ours.suite == theirs.suite:
                return theirs, ours
    if state.sdes_in and state.sdes_out:
        return state.sdes_in[0], None
    return None


def _params(line: Crypto) -> SessionParams:
    return SessionParams(
        unencrypted_srtp=line.has_param("UNENCRYPTED_SRTP"),
        unencrypted_srtcp=line.has_param("UNENCRYPTED_SRTCP"),
        unauthenticated_srtp=line.has_param("UNAUTHENTICATED_SRTP"),
    )


def _contexts(keys: Keys) -> tuple[SrtpContext, SrtpContext | None]:
    theirs, ours = keys
    inbound = open_context(theirs.suite, theirs.key_salt, outbound=False,
                           params=_params(theirs), mki=mki_bytes(theirs.mki))
    if ours is None:
        return inbound, None
    outbound = open_context(ours.suite, ours.key_salt, outbound=True,
                            params=_params(ours), mki=mki_bytes(ours.mki))
    return inbound, outbound


def _plain(stream: Stream, plane: ForwardingPlane) -> None:
    if stream.transport is not None:
        detach(stream)
        plane.update(stream)


def _keyless(stream: Stream, plane: ForwardingPlane) -> None:
    """SRTP without keys: the leg asked for SRTP, so it gets nothing rather than plaintext."""
    detach(stream)
    t = stream.transport = Transport(stream)
    t.srtp = True
    plane.update(stream)


def _secure(stream: Stream, keys: Keys, plane: ForwardingPlane) -> None:
    try:
        inbound, outbound = _contexts(keys)
    except SrtpError as exc:
        logger.error("SDES keys unusable on port %d: %s", stream.local_port, exc)
        _keyless(stream, plane)
        return
    attach_sdes(stream, inbound, outbound)
    plane.update(stream)


def wire_side(side: MediaSide, plane: ForwardingPlane) -> None:
    """Attach (or detach) SDES SRTP on the streams facing `side`'s party, as its settled
    a=crypto pair says; call after an answer for both sides of each media line."""
    state = side.secure
    keys = settled_keys(state) if side.port else None
    for stream in side.streams():
        if keys is None:
            if state.sdes_applied is not None:  # only what SDES attached (not DTLS/ICE)
                _plain(stream, plane)
        elif state.sdes_applied != keys or stream.transport is None or not stream.transport.srtp:
            _secure(stream, keys, plane)  # new keys, or a new stream (re-allocated ports)
    state.sdes_applied = keys
