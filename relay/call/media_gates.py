"""Puts the call's and its parties' `block media`, `silence media` and `block DTMF` state on the
streams that receive each party's RTP (relay.media.gate; docs/spec/ng-protocol.md §9.5-9.7).

A party's state and the call-wide one add up (rtpengine: `call->flag || monologue->flag`).
A stream gets a `Gate` only while something is on, so plain forwarding keeps its fast path; the
plane re-chooses the stream's reader on every change. Run after each of the commands and after
each offer/answer (a re-offer can bring new streams or new payload type numbers).
"""

from __future__ import annotations

from relay.call.model import Call, MediaSide, Party
from relay.media.gate import SILENCE, Gate
from relay.media.plane import ForwardingPlane

STATIC = {"0": "pcmu", "8": "pcma"}
"""RFC 3551 static types with a silence pattern, for an SDP without their rtpmap."""


def _payload_types(side: MediaSide) -> tuple[frozenset[int], dict[int, int]]:
    """(telephone-event payload types, payload type → silence byte) the party sends on `side`."""
    dtmf: set[int] = set()
    silence: dict[int, int] = {}
    offered = side.sdp
    if offered is None:
        return frozenset(), {}
    for pt in offered.formats:
        if not pt.isdigit():
            continue
        name = offered.codec_names.get(pt, "").split("/")[0].lower() or STATIC.get(pt, "")
        if name == "telephone-event":
            dtmf.add(int(pt))
        elif name in SILENCE:
            silence[int(pt)] = SILENCE[name]
    return frozenset(dtmf), silence


def refresh(call: Call, plane: ForwardingPlane) -> None:
    """Set or clear the gate on every RTP stream of `call` from the flags now in force."""
    for party in call.all_parties():
        _refresh_party(call, party, plane)


def _refresh_party(call: Call, party: Party, plane: ForwardingPlane) -> None:
    block = call.block_media or party.block_media
    silence = call.silence_media or party.silence_media
    block_dtmf = call.block_dtmf or party.block_dtmf
    for side in party.medias:
        stream = side.rtp
        if stream is None:
            continue
        gate: Gate | None = None
        if block or silence or block_dtmf:
            gate = stream.gate or Gate()
            gate.block, gate.silence, gate.block_dtmf = block, silence, block_dtmf
            gate.dtmf_pts, gate.silence_bytes = _payload_types(side)
        if gate is stream.gate:
            continue
        stream.gate = gate
        if stream in plane:
            plane.update(stream)
