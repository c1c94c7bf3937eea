"""`rewrite(desc, plan)`: the outgoing SDP, edited as rtpengine 10.5 edits it (docs/spec/sdp.md §1).

The text is copied left to right; tokens are substituted in `o=`, `s=`, `c=` and `m=`, some
attributes are skipped, and generated lines (always CR LF) are inserted at the end of the session
part (`a=rtpengine:`) and at the end of each media section. Untouched lines keep their bytes and
their own terminators. This is daemon/sdp.c `sdp_replace`, minus SRTP/DTLS/ICE generation.
"""

from __future__ import annotations

from relay.sdp.attributes import DIRECTIONS, ICE_ATTRIBUTES, parse_rtcp
from relay.sdp.edit import connection_line, splice
from relay.sdp.errors import SdpError
from relay.sdp.media import rewrite_media
from relay.sdp.model import Line, SessionDescription
from relay.sdp.plan import SessionPlan
from relay.sdp.text import tokens


def rewrite(desc: SessionDescription, plan: SessionPlan) -> str:
    """Apply `plan` to `desc`; the plan must have one `MediaPlan` per m= section."""
    if len(plan.media) != len(desc.media):
        raise SdpError(f"plan has {len(plan.media)} media plans for {len(desc.media)} m= sections")
    out = [_session_line(line, desc, plan) for line in desc.session_lines]
    if plan.ice_lite:
        at = next((i + 1 for i, ln in enumerate(desc.session_lines) if ln.kind == "t"), len(out))
        out.insert(at, "a=ice-lite\r\n")
    if plan.loop_protect_id is not None:
        out.append(f"a=rtpengine:{plan.loop_protect_id}\r\n")
    original_sendrecv = any(m.direction is None for m in plan.media)
    for section, media_plan in zip(desc.media, plan.media, strict=True):
        out.append(rewrite_media(section, media_plan, original_sendrecv))
    out.append(desc.tail)
    return "".join(out)


def _session_line(line: Line, desc: SessionDescription, plan: SessionPlan) -> str:
    """One session-level line as it goes out ("" when it is stripped)."""
    if line.kind == "o":
        return _origin(line, plan)
    if line.kind == "s" and plan.session_name is not None:
        return f"s={plan.session_name}{line.eol}"
    if line.kind == "c" and _replace_session_connection(desc, plan):
        keep_zero = bool(plan.media) and plan.media[0].keep_zero_address
        return connection_line(line, plan.family, plan.address, keep_zero)
    if line.kind == "a" and _strip_session_attribute(line, plan):
        return ""
    return line.text


def _replace_session_connection(desc: SessionDescription, plan: SessionPlan) -> bool:
    """§1.5: with replace session-connection, or when some m= section relies on it."""
    return plan.replace_session_connection or any(m.connection is None for m in desc.media)


def _strip_session_attribute(line: Line, plan: SessionPlan) -> bool:
    """rtpengine's process_session_attributes, for the ICE option "default"/"remove"."""
    name, value = line.attribute
    if name in ICE_ATTRIBUTES or name in ("candidate", "fingerprint", "setup"):
        return True
    if name in DIRECTIONS:
        return not any(m.direction is None for m in plan.media)
    if name == "extmap":
        return any(m.strip_extmap for m in plan.media)
    if name == "group":
        return (value or "").startswith("BUNDLE ")
    # A broken a=rtcp is registered as "ignore", and those are stripped; a valid one stays.
    return name == "rtcp" and parse_rtcp(value) is None


def _origin(line: Line, plan: SessionPlan) -> str:
    """o=: username, version and (replace origin) the address tail substituted in place."""
    found = tokens(line.value, 6)
    if found is None:
        return line.text
    spans, value = found[0], line.value
    edits: list[tuple[int, int, str]] = []
    if plan.origin_username is not None:
        edits.append((*spans[0], plan.origin_username))
    if plan.origin_version is not None:
        edits.append((*spans[2], plan.origin_version))
    if plan.replace_origin:
        edits.append((spans[4][0], spans[5][1], f"{plan.family} {plan.address}"))
    return f"o={splice(value, edits)}{line.eol}"
