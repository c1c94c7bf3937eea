"""One m= section through rtpengine 10.5's rewriter (docs/spec/sdp.md §1.6–§1.11).

Kept lines stay in place; codec, direction, RTCP, ptime, ICE, mid and SRTP attributes are
stripped; the generated block goes after the section's last surviving line, in the order of
daemon/sdp.c `print_sdp_media_section`.
"""

from __future__ import annotations

from relay.sdp.attributes import (
    DIRECTIONS,
    ICE_ATTRIBUTES,
    parse_fmtp,
    parse_rtcp_fb,
    parse_rtpmap,
)
from relay.sdp.edit import connection_line, splice
from relay.sdp.model import RTP_PROTOCOLS, Line, MediaSection
from relay.sdp.parse import parse_media_line
from relay.sdp.plan import MediaPlan
from relay.sdp.text import c_strtol

_KEPT_ICE = frozenset({"ice-ufrag", "ice-pwd", "ice-options", "candidate"})
_ALWAYS_STRIPPED = ICE_ATTRIBUTES | {
    "candidate",
    "rtcp",
    "rtcp-mux",
    "mid",
    "end-of-candidates",
    "crypto",
    "fingerprint",
    "setup",
}


def rewrite_media(section: MediaSection, plan: MediaPlan, original_sendrecv: bool) -> str:
    """The section's outgoing text: edited lines, then the generated block."""
    protocol = plan.protocol or section.protocol
    payload_types = _payload_types(section, plan)
    has_codecs = protocol in RTP_PROTOCOLS and bool(payload_types)
    out = [_media_line(section, plan, protocol, payload_types)]
    for line in section.lines[1:]:
        if line.kind == "c":
            out.append(connection_line(line, plan.family, plan.address, plan.keep_zero_address))
        elif line.kind != "a" or not _stripped(line, plan, has_codecs, original_sendrecv):
            out.append(line.text)
    active = section.port != 0 and plan.port != 0
    out.append(_block(section, plan, protocol, payload_types, active))
    return "".join(out)


def _payload_types(section: MediaSection, plan: MediaPlan) -> tuple[int, ...]:
    """The plan's format list read like m= formats; None keeps the input's."""
    if plan.formats is None:
        return section.payload_types
    return tuple(pt for fmt in plan.formats for pt in [c_strtol(fmt)[0]] if pt is not None)


def _media_line(
    section: MediaSection, plan: MediaPlan, protocol: str, payload_types: tuple[int, ...]
) -> str:
    """m=: port (with /count), protocol and format list substituted (§1.6)."""
    line = section.lines[0]
    parsed = parse_media_line(line.value)
    assert parsed is not None  # the section was parsed from this very line
    value = line.value
    edits: list[tuple[int, int, str]] = []
    if section.port != 0:
        port = str(plan.port)
        if section.port_count != 1 and plan.port != 0:
            port += f"/{section.port_count}"
        edits.append((*parsed.port_span, port))
    if protocol != section.protocol:
        edits.append((*parsed.protocol_span, protocol))
    if protocol in RTP_PROTOCOLS:
        edits.append((parsed.formats_start, len(value), " ".join(map(str, payload_types))))
    return f"m={splice(value, edits)}{line.eol}"


def _stripped(line: Line, plan: MediaPlan, has_codecs: bool, original_sendrecv: bool) -> bool:
    """rtpengine's process_media_attributes: whether this a= line leaves its place."""
    name, value = line.attribute
    if plan.keep_ice and name in _KEPT_ICE:
        return False
    if name in _ALWAYS_STRIPPED:
        return True
    if name in DIRECTIONS:
        return not original_sendrecv
    if name == "ptime":
        return bool(plan.ptime)
    if name == "extmap":
        return plan.strip_extmap
    if not has_codecs:
        return False
    if name == "rtpmap":
        return parse_rtpmap(value) is not None
    if name == "fmtp":
        return parse_fmtp(value) is not None
    return name == "rtcp-fb" and parse_rtcp_fb(value) is not None


def _block(
    section: MediaSection,
    plan: MediaPlan,
    protocol: str,
    payload_types: tuple[int, ...],
    active: bool,
) -> str:
    """The generated lines (§1.7 order); a rejected section gets only mid/end-of-candidates."""
    lines: list[str] = []
    mid = section.mid if plan.input_mid and section.mid is not None else plan.mid
    if mid is not None:
        lines.append(f"a=mid:{mid}")
    rtp = protocol in RTP_PROTOCOLS
    if active:
        if rtp:
            lines.extend(_codec_lines(section, payload_types, plan.codec_lines))
        if plan.direction is not None:
            lines.append(f"a={plan.direction}")
        if rtp:
            lines.extend(_rtcp_lines(plan))
        lines.extend(plan.crypto_lines)
        if rtp and plan.ptime:
            lines.append(f"a=ptime:{plan.ptime}")
        lines.extend(plan.ice_lines)
    if plan.end_of_candidates and "a=end-of-candidates" not in plan.ice_lines:
        lines.append("a=end-of-candidates")
    return "".join(f"{line}\r\n" for line in lines)


def _codec_lines(
    section: MediaSection, payload_types: tuple[int, ...],
    given: tuple[tuple[int, str, str, tuple[str, ...]], ...] | None = None,
) -> list[str]:
    """rtpmap, fmtp and rtcp-fb per payload type, in m= order (insert_codec_parameters);
    `given`: the plan's own codec lines (transcoding) instead of the section's."""
    lines = []
    if given is not None:
        for pt, name, fmtp, fbs in given:
            lines.append(f"a=rtpmap:{pt} {name}")
            if fmtp:
                lines.append(f"a=fmtp:{pt} {fmtp}")
            lines.extend(f"a=rtcp-fb:{pt} {fb}" for fb in fbs)
        return lines
    for pt in payload_types:
        # A dynamic PT without a=rtpmap is printed as "/0" by rtpengine 10.5 (verified).
        lines.append(f"a=rtpmap:{pt} {section.codec(pt) or '/0'}")
        params = section.fmtp.get(pt)
        if params:
            lines.append(f"a=fmtp:{pt} {params}")
        lines.extend(f"a=rtcp-fb:{pt} {fb}" for fb in section.rtcp_fb.get(pt, ()))
    return lines


def _rtcp_lines(plan: MediaPlan) -> list[str]:
    """a=rtcp (short or full form) and a=rtcp-mux, as the plan decided (§1.8)."""
    lines = []
    if plan.rtcp_port is not None:
        rtcp = f"a=rtcp:{plan.rtcp_port}"
        if plan.full_rtcp_attribute:
            rtcp += f" IN {plan.family} {plan.address}"
        lines.append(rtcp)
    if plan.rtcp_mux:
        lines.append("a=rtcp-mux")
    return lines
