"""From SDP text to what the call model needs: the parsed description, its `OfferedSession`
summary, and a render callback that applies a `SessionPlan` to the same text.

Also the gate for what rtpvault cannot do yet: offers needing transcoding (codec changes,
repacketization to a requested ptime) get a clear error instead of a silently wrong SDP.
SRTP (SDES, DTLS-SRTP) and ICE go through to the call model (relay.call.secure).
"""

from __future__ import annotations

from collections.abc import Callable

from relay.call.offered import OfferedMedia, OfferedSession
from relay.ng.flags import NgFlags
from relay.sdp.model import MediaSection, SessionDescription
from relay.sdp.parse import parse
from relay.sdp.plan import SessionPlan
from relay.sdp.rewrite import rewrite


class SdpUnsupported(ValueError):
    """A valid request asking for something rtpvault does not implement yet (error reply)."""


def _first(values: tuple[str | None, ...]) -> str | None:
    return next((v for v in values if v is not None), None)


def _media(m: MediaSection, desc: SessionDescription) -> OfferedMedia:
    conn = m.effective_connection
    names = {}
    for pt in m.formats:
        if pt.isdigit():
            name = m.codec(int(pt))
            if name:
                names[pt] = name
    rtcp_address = m.rtcp_connection.address if m.rtcp_connection is not None else None
    address = conn.address if conn is not None else None
    # rtpengine's sdp_streams: a=rtcp naming the RTP port means rtcp-mux (a=rtcp-mux or not),
    # except for the trickle-ICE placeholder 0.0.0.0:9
    trickle = m.port == 9 and address in ("0.0.0.0", "::")
    rtcp_on_rtp = m.rtcp_port is not None and m.rtcp_port == m.port and not trickle
    return OfferedMedia(
        type=m.media_type,
        port=m.port,
        protocol=m.protocol,
        formats=m.formats,
        address=address,
        family=conn.family if conn is not None else "IP4",
        rtcp_port=m.rtcp_port,
        rtcp_address=rtcp_address,
        rtcp_mux=m.rtcp_mux or rtcp_on_rtp,
        direction=m.direction,
        ptime=m.ptime,
        ice=m.ice,
        crypto=m.crypto,
        fingerprint=m.fingerprint,
        end_of_candidates=m.end_of_candidates,
        mid=m.mid,
        crypto_values=tuple(v for v in m.attributes("crypto") if v is not None),
        setup=_first(m.attributes("setup")) or _first(desc.attributes("setup")),
        fingerprint_value=_first(m.attributes("fingerprint"))
        or _first(desc.attributes("fingerprint")),
        ice_ufrag=_first(m.attributes("ice-ufrag")) or _first(desc.attributes("ice-ufrag")),
        ice_pwd=_first(m.attributes("ice-pwd")) or _first(desc.attributes("ice-pwd")),
        candidates=tuple(v for v in m.attributes("candidate") if v is not None),
        ice_trickle=any(
            "trickle" in (v or "").split()
            for v in (*m.attributes("ice-options"), *desc.attributes("ice-options"))
        ),
        codec_names=names,
        ice_lite=bool(desc.attributes("ice-lite")),
        ice_lite_media=bool(m.attributes("ice-lite")),
    )


def summarize(desc: SessionDescription) -> OfferedSession:
    origin = desc.origin
    return OfferedSession(
        origin_username=origin.username if origin else "",
        origin_version=origin.version if origin else "",
        session_name=desc.session_name or "",
        media=tuple(_media(m, desc) for m in desc.media),
        rtpengine_ids=desc.rtpengine_ids,
    )


def check_supported(offered: OfferedSession, flags: NgFlags, offer: bool = True) -> None:
    """Refuse, with a clear reason, what would need transcoding."""
    _codec_checks(offered, flags, offer)


def _codec_checks(offered: OfferedSession, flags: NgFlags, offer: bool) -> None:
    for kind in ("transcode", "offer", "accept", "consume", "set"):
        if flags.codec.get(kind):
            raise SdpUnsupported(f"codec-{kind} (transcoding) is not supported by rtpvault yet")
    if flags.words & {"always-transcode", "inject-DTMF", "SIPREC"}:
        raise SdpUnsupported(
            "transcoding, DTMF injection and SIPREC are not supported by rtpvault yet"
        )
    if offer and ((flags.ptime or 0) > 0 or (flags.rev_ptime or 0) > 0):
        # rtpengine 10.5 repacketizes (transcodes) to a requested ptime
        raise SdpUnsupported("ptime (repacketization) is not supported by rtpvault yet")


def prepare(
    text: str, flags: NgFlags, offer: bool = True
) -> tuple[SessionDescription, OfferedSession, Callable[[SessionPlan], str]]:
    """Parse `text` (SdpError on bad SDP), summarise it and check it is supported (`offer`:
    the SDP is an offer, where flags like ptime= ask for transcoding)."""
    desc = parse(text)
    offered = summarize(desc)
    check_supported(offered, flags, offer)

    def render(plan: SessionPlan) -> str:
        return rewrite(desc, plan)

    return desc, offered, render
