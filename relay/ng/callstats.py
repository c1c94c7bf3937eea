"""The `query`/`delete` call statistics dictionary, shaped and ordered like rtpengine 10.5's
(docs/spec/ng-protocol.md §4.1; SDES, DTLS and ICE keys and flags §4.4). Pure: reads the call
model, returns plain dicts.
"""

from __future__ import annotations

import socket
from typing import Any

from relay.call.model import Call, MediaSide, Party, plus_one
from relay.call.sdes_media import settled_keys
from relay.call.secure import SecureState
from relay.dtls.session import State
from relay.media.stream import Stream


def _family(stream: Stream) -> str:
    return "IPv6" if stream.family == socket.AF_INET6 else "IPv4"


def _endpoint(address: tuple[str, int] | None, family: str) -> dict[str, Any]:
    if address is None:
        return {}
    fam = "IPv6" if ":" in address[0] else "IPv4"
    return {"family": fam, "address": address[0], "port": address[1]}


def _stream_flags(stream: Stream) -> list[str]:
    flags = ["RTCP" if stream.is_rtcp else "RTP"]
    if stream.sdp_peer is not None:
        flags.append("filled")
    if stream.confirmed:
        flags.append("confirmed")
    t = stream.transport
    if t is not None and t.dtls is not None and t.dtls.state is State.CONNECTED:
        # the peer's certificate matched its a=fingerprint (the session fails otherwise)
        flags.append("DTLS fingerprint verified")
    if stream.strict_source:
        flags.append("strict source address")
    if stream.media_handover:
        flags.append("media handover")
    return flags


def sdes_suite(state: SecureState) -> str | None:
    """The SDES suite rtpengine shows on the streams facing a party (§4.4, measured): the pair
    the answer settled; else, while the party has sent no a=crypto (no answer yet, or a
    DTLS-only answer), the first line we offered it; None when its answer named none of ours."""
    keys = settled_keys(state)
    if keys is not None and keys[1] is not None:  # (theirs, None): unpaired, shows none
        return keys[0].suite.name
    if not state.sdes_in and state.sdes_out:
        return state.sdes_out[0].suite.name
    return None


def stream_stats(stream: Stream, created: float, suite: str | None = None) -> dict[str, Any]:
    family = _family(stream)
    out: dict[str, Any] = {}
    if stream.local_port:  # a rejected stream has given its port back
        out["local port"] = stream.local_port
        out["local address"] = stream.local_address
        out["family"] = family
    out["endpoint"] = _endpoint(stream.peer, family)
    out["advertised endpoint"] = _endpoint(stream.sdp_peer, family)
    t = stream.transport
    if t is not None and t.dtls is not None and t.suite is not None:
        suite = t.suite  # DTLS-SRTP keys exported: their profile's suite [source]
    if suite is not None:
        out["crypto suite"] = suite
    out.update({
        "last packet": int(stream.last_packet or created),
        "flags": _stream_flags(stream),
    })
    if stream.ssrc is not None:
        out["SSRC"] = stream.ssrc
    # rtpengine counts a failed send on the sink's errors (e.g. its ports were released).
    errors = stream.errors + stream.send_errors
    out["stats"] = {"packets": stream.packets, "bytes": stream.bytes, "errors": errors}
    return out


_ROLES = {"actpass": ("active", "passive"), "active": ("active",), "passive": ("passive",)}
_THEIR_ROLE = {"actpass": "actpass", "active": "passive", "passive": "active"}


def dtls_flags(state: SecureState) -> list[str]:
    """rtpengine's "DTLS-SRTP" and "DTLS role" media flags (§4.4, measured): from the latest
    SDP on the leg; ours says our a=setup, the party's its a=setup turned round (actpass, ours
    or theirs while unanswered, sets both roles); a party that answered without a fingerprint
    has none."""
    if state.heard_last:
        if state.fingerprint_in is None:
            return []
        setup = _THEIR_ROLE.get(state.setup_in or "")
    else:
        setup = state.setup_out
    if setup is None and state.role_without_dtls is not None and not state.heard_last:
        return [f"DTLS role {state.role_without_dtls}"]
    if setup is None and not state.heard_last:
        return []
    return ["DTLS-SRTP"] + [f"DTLS role {r}" for r in _ROLES.get(setup or "", ())]


def _media_flags(side: MediaSide) -> list[str]:
    flags = []
    if side.initialized:
        flags.append("initialized")
    if side.asymmetric or any(s.asymmetric for s in side.streams()):
        flags.append("asymmetric")
    if side.send:
        flags.append("send")
    if side.recv:
        flags.append("recv")
    if side.rtcp_mux:
        flags.append("rtcp-mux")
    state = side.secure
    flags += dtls_flags(state)
    if (state.sdes_in or state.sdes_out) and not state.sdes_declined:
        flags.append("SDES")
    if side.ice:
        flags.append("ICE")
    if side.trickle_ice:
        flags.append("trickle ICE")
    if side.ice_controlling and not state.ice_lite_self:
        flags.append("ICE controlling")  # a lite agent never controls (rtpengine's __ice_offer)
    if state.lite_peer:
        flags.append("ICE-lite peer")
    if side.unidirectional:
        flags.append("unidirectional")
    if side.transcoding:
        flags.append("transcoding")
    return flags


def _rtcp_of(address: tuple[str, int] | None, rtcp_port: int | None) -> tuple[str, int] | None:
    """The RTCP peer beside an RTP peer: the SDP's a=rtcp port when it gave one, else one up."""
    if address is None or rtcp_port is None:
        return plus_one(address)
    return address[0], rtcp_port


def fallback_rtcp_stats(
    rtp: Stream, created: float, muxed: bool, suite: str | None = None,
    rtcp_port: int | None = None,
) -> dict[str, Any]:
    """rtpengine's RTCP stream of a media that has only an RTP port (rtcp-mux=require): local
    port 0, the RTP peers one port up (or at the party's a=rtcp port), flagged "fallback RTCP"
    while the party muxes."""
    family = _family(rtp)
    flags = ["RTCP", "fallback RTCP"] if muxed else ["RTCP"]
    if rtp.sdp_peer is not None:
        flags.append("filled")
    out: dict[str, Any] = {}
    if rtp.local_port:  # a rejected line's released streams show no local socket at all
        out.update({"local port": 0, "local address": rtp.local_address, "family": family})
    out["endpoint"] = _endpoint(_rtcp_of(rtp.peer, rtcp_port), family)
    out["advertised endpoint"] = _endpoint(_rtcp_of(rtp.sdp_peer, rtcp_port), family)
    if suite is not None:
        out["crypto suite"] = suite
    return out | {
        "last packet": int(created),
        "flags": flags,
        "stats": {"packets": 0, "bytes": 0, "errors": 0},
    }


def _rejected_stats(
    address: str | None, created: float, base: int = 0, strict: bool = False, handover: bool = False
) -> list[dict[str, Any]]:
    """rtpengine's streams of an m= line without ports (rejected, or re-enabled by its party's
    offer before an SDP went to it): no local port, the SDP's address and port (0 if
    rejected) and one up."""
    out = []
    for port, kind in ((base, "RTP"), (base + 1, "RTCP")):
        endpoint = _endpoint((address, port) if address else None, "")
        out.append({
            "endpoint": endpoint,
            "advertised endpoint": dict(endpoint),
            "last packet": int(created),
            "flags": [kind, "filled"] + (
                ["strict source address"] * strict + ["media handover"] * handover
            ) if address else [kind],
            "stats": {"packets": 0, "bytes": 0, "errors": 0},
        })
    return out


def media_stats(side: MediaSide, codec: str | None, created: float) -> dict[str, Any]:
    out: dict[str, Any] = {"index": side.index, "type": side.type, "protocol": side.protocol}
    if codec:
        out["codec"] = codec
    suite = sdes_suite(side.secure)
    streams = [stream_stats(s, created, suite) for s in side.streams()]
    if side.ice:
        for st in streams:
            st["flags"].append("ICE")
    if side.rtcp_mux and side.rtp is not None and side.rtcp is not None and len(streams) == 2:
        # rtpengine's __init_streams: with rtcp-mux the RTP stream carries RTCP too and the
        # RTCP port is only the fallback
        streams[0]["flags"].insert(1, "RTCP")
        streams[1]["flags"].insert(1, "fallback RTCP")
    sdp = side.sdp
    if (
        sdp is not None and not sdp.rejected and sdp.rtcp_port == sdp.port
        and side.rtcp is not None and len(streams) == 2 and "filled" not in streams[1]["flags"]
    ):
        # a=rtcp naming the RTP port: rtpengine fills the RTCP stream with an empty endpoint
        f = streams[1]["flags"]
        f.insert(sum(1 for x in f if x in ("RTCP", "fallback RTCP")), "filled")
    if side.rtcp_fallback and side.rtp is not None and side.rtcp is None:
        # Muxed unless the party's latest SDP declined rtcp-mux (rtpengine 10.5, measured).
        muxed = side.sdp is None or side.sdp.rtcp_mux
        if muxed:
            streams[0]["flags"].insert(1, "RTCP")  # the RTP stream carries the RTCP too
        rtcp_port = side.sdp.rtcp_port if side.sdp is not None else None
        streams.append(fallback_rtcp_stats(side.rtp, created, muxed, suite, rtcp_port))
        if side.ice:
            streams[-1]["flags"].append("ICE")
    if not streams:
        # rtpengine's __disable_streams gives both sides of a rejected line two port-less
        # streams; only a side that sent the SDP has its (zero-port) address in them
        sdp = side.sdp
        address, strict, handover = side.portless
        address = address or (sdp.address if sdp is not None else None)
        if sdp is None or not (sdp.rejected or side.initialized):
            address = None
        streams = _rejected_stats(
            address, created, sdp.port if sdp is not None else 0, strict, handover
        )
    out["streams"] = streams
    out["flags"] = _media_flags(side)
    return out


def media_codec(party: Party, side: MediaSide) -> str | None:
    """The codec in use: shown once media has arrived, from the first common format (rtpengine's
    __rtp_stats_codec, which `query` and the CLI's `list sessions <call-id>` share)."""
    other = party.other
    if other is None or side.rtp is None or not side.rtp.packets:
        return None
    if side.index > len(other.medias):
        return None
    mine, theirs = side.sdp, other.medias[side.index - 1].sdp
    if mine is None or theirs is None or not mine.formats or not theirs.formats:
        return None
    common = [pt for pt in theirs.formats if pt in mine.formats] or list(mine.formats)
    return mine.codec_names.get(common[0]) or theirs.codec_names.get(common[0])


def _sub(party: Party) -> dict[str, str]:
    return {"tag": party.tag, "type": "offer/answer"}


def subscribers(party: Party, parties: list[Party]) -> list[Party]:
    """The parties receiving from `party`: its partner first, then the others in call order."""
    candidates = [party.other] if party.other is not None else []
    candidates += [p for p in parties if p is not party.other]
    return [p for p in candidates if party in p.subscriptions()]


def party_stats(
    party: Party, created: float, subscribers: list[Party] | None = None
) -> dict[str, Any]:
    if subscribers is None:
        subscribers = [party.other] if party.other is not None else []
    out: dict[str, Any] = {"tag": party.tag}
    if party.via_branch:
        out["via-branch"] = party.via_branch
    if party.label:
        out["label"] = party.label
    out["created"] = int(party.created)
    out["subscriptions"] = [_sub(p) for p in party.subscriptions()]
    out["subscribers"] = [_sub(p) for p in subscribers]
    out["medias"] = [media_stats(m, media_codec(party, m), created) for m in party.medias]
    return out


def call_stats(
    call: Call, tags: set[str] | None = None, first: Party | None = None
) -> dict[str, Any]:
    """The statistics dict for `query`/`delete`, without `result`; `first` is listed first."""
    parties = call.all_parties()
    if first is not None and first in parties:
        parties.remove(first)
        parties.insert(0, first)
    everyone = parties
    if tags is not None or first is not None:
        # rtpengine lists the named party (the to-tag's, else the from-tag's) and the parties
        # it receives from: its partner, then earlier forked answerers.
        chosen = [first] if first is not None and (not tags or first.tag in tags) else []
        if chosen:
            chosen += [p for p in chosen[0].subscriptions() if p not in chosen]
        parties = chosen
    tag_dict: dict[str, Any] = {}
    untagged = 0
    totals = {"RTP": [0, 0, 0], "RTCP": [0, 0, 0]}
    for party in parties:
        key = party.tag
        if not key:
            untagged += 1
            key = f"<untagged {untagged}>"
        tag_dict[key] = party_stats(party, call.created, subscribers(party, everyone))
        for side in party.medias:
            for s in side.streams():
                t = totals["RTCP" if s.is_rtcp else "RTP"]
                t[0] += s.packets
                t[1] += s.bytes
                t[2] += s.errors + s.send_errors
    return {
        "created": int(call.created),
        "created_us": int((call.created % 1) * 1_000_000),
        "last signal": int(call.last_signal),
        "SSRC": {},
        "tags": tag_dict,
        "totals": {
            k: {"packets": v[0], "bytes": v[1], "errors": v[2]} for k, v in totals.items()
        },
    }
