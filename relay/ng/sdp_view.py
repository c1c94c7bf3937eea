"""From SDP text to what the call model needs: the parsed description, its `OfferedSession`
summary, and a render callback that applies a `SessionPlan` to the same text.

Also the gate for what rtpvault cannot do yet (DTMF injection, SIPREC): a clear error instead
of a silently wrong SDP. Codec flags and ptime go to the call model (relay.call.transcoding).
SRTP (SDES, DTLS-SRTP) and ICE go through to the call model (relay.call.secure).
"""

from __future__ import annotations

from collections.abc import Callable

from relay.call.offered import OfferedMedia, OfferedSession
from relay.ng.flags import NgFlags
from relay.sdp.model import Line, MediaSection, SessionDescription
from relay.sdp.parse import parse
from relay.sdp.plan import SessionPlan
from relay.sdp.rewrite import rewrite


class SdpUnsupported(ValueError):
    """A valid request asking for something rtpvault does not implement yet (error reply)."""


def _first(values: list[str | None]) -> str | None:
    return next((v for v in values if v is not None), None)


_WANTED = frozenset(
    ("crypto", "setup", "fingerprint", "ice-ufrag", "ice-pwd", "candidate", "ice-options")
    + ("ice-lite",)
)
"""The a= names `_media` reads (ice-lite only for its presence)."""
_NONE: list[str | None] = []


def _grouped(lines: tuple[Line, ...]) -> dict[str, list[str | None]]:
    """Values of the wanted `a=` lines by name, in order, in one pass over `lines`: the same
    as calling `.attributes(name)` per name, which walked every line once per name."""
    found: dict[str, list[str | None]] = {}
    for line in lines:
        if line.kind == "a":
            name, value = line.attribute
            if name in _WANTED:
                found.setdefault(name, []).append(value)
    return found


def _media(m: MediaSection, session: dict[str, list[str | None]]) -> OfferedMedia:
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
    own = _grouped(m.lines)

    def first(name: str) -> str | None:
        return _first(own.get(name, _NONE)) or _first(session.get(name, _NONE))

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
        crypto_values=tuple(v for v in own.get("crypto", _NONE) if v is not None),
        setup=first("setup"),
        fingerprint_value=first("fingerprint"),
        ice_ufrag=first("ice-ufrag"),
        ice_pwd=first("ice-pwd"),
        candidates=tuple(v for v in own.get("candidate", _NONE) if v is not None),
        ice_trickle=any(
            "trickle" in (v or "").split()
            for v in (*own.get("ice-options", _NONE), *session.get("ice-options", _NONE))
        ),
        codec_names=names,
        codec_fmtp={str(pt): v for pt, v in m.fmtp.items()} if m.fmtp else {},
        codec_rtcp_fb={str(pt): v for pt, v in m.rtcp_fb.items()} if m.rtcp_fb else {},
        ice_lite="ice-lite" in session,
        ice_lite_media="ice-lite" in own,
    )


def summarize(desc: SessionDescription) -> OfferedSession:
    origin = desc.origin
    session = _grouped(desc.session_lines)
    return OfferedSession(
        origin_username=origin.username if origin else "",
        origin_version=origin.version if origin else "",
        session_name=desc.session_name or "",
        media=tuple(_media(m, session) for m in desc.media),
        rtpengine_ids=desc.rtpengine_ids,
    )


def check_supported(offered: OfferedSession, flags: NgFlags, offer: bool = True) -> None:
    """Refuse, with a clear reason, what would need transcoding."""
    _codec_checks(offered, flags, offer)


def _codec_checks(offered: OfferedSession, flags: NgFlags, offer: bool) -> None:
    if flags.words & {"inject-DTMF", "SIPREC"}:
        raise SdpUnsupported("DTMF injection and SIPREC are not supported by rtpvault yet")


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
