"""SDP text → `SessionDescription`, following rtpengine 10.5's `sdp_parse` (docs/spec/sdp.md §1.2).

Lines end at LF (a CR before it belongs to the terminator); a missing final LF is fine; an empty
line ends the SDP. Only the line letters rtpengine accepts are allowed, `o=`/`s=` may not appear
inside a media section, and a bad `m=` port, a bad `c=` address or (for RTP protocols) a payload
type that is not a number up to 127 make the whole SDP invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from relay.sdp.attributes import (
    DIRECTIONS,
    Connection,
    Rtpmap,
    parse_connection,
    parse_fmtp,
    parse_rtcp,
    parse_rtcp_fb,
    parse_rtpmap,
)
from relay.sdp.errors import SdpError
from relay.sdp.model import RTP_PROTOCOLS, Line, MediaSection, Origin, SessionDescription
from relay.sdp.text import all_tokens, c_strtol, str_to_i, tokens

_KNOWN_LETTERS = frozenset("voscmabkiueptrz")


@dataclass(frozen=True, slots=True)
class MediaLine:
    """The parsed `m=` value with the spans `rewrite` substitutes."""

    media_type: str
    port: int
    port_count: int
    protocol: str
    formats: tuple[str, ...]
    payload_types: tuple[int, ...]
    port_span: tuple[int, int]
    protocol_span: tuple[int, int]
    formats_start: int


def split_lines(text: str) -> tuple[list[Line], str, str]:
    """Cut the body into lines; also return the kept 1-character tail and the dropped rest."""
    if text.endswith("\n"):
        lines = _split_plain(text)
        if lines is not None:
            return lines, "", ""
    return _split_scan(text)


def _split_plain(text: str) -> list[Line] | None:
    """The common body (every line `X=…`, the last one ending in LF) cut with `str.split`;
    None for anything else (an empty line, a line without `=`, …): `_split_scan` decides."""
    lines: list[Line] = []
    append = lines.append
    for raw in text[:-1].split("\n"):
        if len(raw) < 2 or raw[1] != "=" or raw[0] == "\r":
            return None
        if raw[-1] == "\r" and len(raw) > 2:
            append(Line(raw[0], raw[2:-1], "\r\n"))
        else:
            append(Line(raw[0], raw[2:], "\n"))
    return lines


def _split_scan(text: str) -> tuple[list[Line], str, str]:
    """rtpengine's line loop, character positions and all."""
    lines: list[Line] = []
    pos, end = 0, len(text)
    # rtpengine's loop runs while at least two characters are left (`b < end - 1`).
    while pos < end - 1:
        if text[pos] in "\r\n":
            return lines, "", text[pos:]
        lf = text.find("\n", pos)
        if text[pos + 1] != "=":
            raise _error(len(lines) + 1, text[pos : lf if lf >= 0 else end], "Missing '=' sign")
        if lf < 0:
            lines.append(Line(text[pos], text[pos + 2 :], ""))
            return lines, "", ""
        eol = "\r\n" if lf - 1 >= pos + 2 and text[lf - 1] == "\r" else "\n"
        lines.append(Line(text[pos], text[pos + 2 : lf + 1 - len(eol)], eol))
        pos = lf + 1
    return lines, text[pos:], ""


def parse(text: str) -> SessionDescription:
    """Parse an SDP body; raise `SdpError` naming the first line rtpengine would refuse."""
    lines, tail, dropped = split_lines(text)
    if not lines:
        raise SdpError("Error parsing SDP: empty body, no v= line")
    state = _State()
    session_lines, sections = state.session_lines, state.sections
    for number, line in enumerate(lines, 1):
        if line.kind == "a" and session_lines:  # most lines: what `feed` does with them
            (sections[-1] if sections else session_lines).append(line)
            continue
        reason = state.feed(line)
        if reason:
            raise _error(number, line.text, reason)
    session_conn = state.session_connection
    session_attrs = tuple(line for line in state.session_lines if line.kind == "a")
    media = []
    for index, section in enumerate(state.sections):
        try:
            media.append(_media_section(section, session_attrs, session_conn))
        except SdpError as exc:
            raise SdpError(f"Error parsing SDP media section {index + 1}: {exc}") from None
    return SessionDescription(
        session_lines=tuple(state.session_lines),
        media=tuple(media),
        origin=state.origin,
        session_name=state.session_name,
        connection=session_conn,
        direction=next((d for d in _attr_names(session_attrs) if d in DIRECTIONS), None),
        ice=any(_is_ice(name) for name in _attr_names(session_attrs)),
        rtpengine_ids=tuple(
            v for line in session_attrs for n, v in [line.attribute] if n == "rtpengine" and v
        ),
        tail=tail,
        dropped=dropped,
    )


def _error(number: int, line: str, reason: str) -> SdpError:
    return SdpError(f"Error parsing SDP at line {number} ({line.rstrip()!r}): {reason}")


@dataclass
class _State:
    """What the line walk has seen so far (one session; media sections as line lists)."""

    session_lines: list[Line] = field(default_factory=list)
    sections: list[list[Line]] = field(default_factory=list)
    origin: Origin | None = None
    session_name: str | None = None
    session_connection: Connection | None = None
    media_connection: bool = False

    def feed(self, line: Line) -> str | None:
        """Take one line; return rtpengine's error text if it refuses it."""
        kind, in_media = line.kind, bool(self.sections)
        if not self.session_lines:
            if kind != "v":
                return "SDP doesn't start with a session definition"
            if line.value != "0":
                return "Error in v= line"
            self.session_lines.append(line)
            return None
        if kind not in _KNOWN_LETTERS:
            return "Unknown SDP line type found"
        if kind == "v":
            return "more than one session (second v= line) is not supported"
        if kind in "os" and in_media:
            return f"{kind}= line found within media section"
        reason = self._check(line, in_media)
        if reason is None:
            self._add(line)
        return reason

    def _check(self, line: Line, in_media: bool) -> str | None:
        if line.kind == "o":
            return self._origin(line.value)
        if line.kind == "s":
            self.session_name = line.value
        elif line.kind == "c":
            return self._connection(line.value, in_media)
        elif line.kind == "m":
            self.media_connection = False
            if parse_media_line(line.value) is None:
                return "Error parsing m= line"
        return None

    def _add(self, line: Line) -> None:
        if line.kind == "m":
            self.sections.append([line])
        elif self.sections:
            self.sections[-1].append(line)
        else:
            self.session_lines.append(line)

    def _origin(self, value: str) -> str | None:
        # `tokens(value, 6)` by str.split: six tokens at single spaces, the rest ignored; the
        # text may not run out before the sixth starts.
        parts = value.split(" ", 6)
        if self.origin is not None or len(parts) < 6 or (len(parts) == 6 and not parts[5]):
            return "Error parsing o= line"
        self.origin = Origin(*parts[:6])
        return None

    def _connection(self, value: str, in_media: bool) -> str | None:
        parsed = parse_connection(value)
        if parsed is None or (self.media_connection if in_media else self.session_connection):
            return "Error parsing c= line"
        if in_media:
            self.media_connection = True
        else:
            self.session_connection = parsed[0]
        return None


@lru_cache(maxsize=256)  # read while parsing, again per section and again by the rewriter
def parse_media_line(value: str) -> MediaLine | None:
    """rtpengine's parse_media plus the payload-type check of sdp_streams; None if invalid."""
    found = tokens(value, 3)
    if found is None:
        return None
    (t0, t1), (p0, p1), (r0, r1) = found[0]
    port, after = c_strtol(value, p0)
    if port is None or not 0 <= port <= 0xFFFF:
        return None
    count = 1
    if after < len(value) and value[after] == "/":
        count = str_to_i(value[after + 1 :], 0)
        if not 0 < count <= 10:
            return None
    fmt_start = found[1]
    spans = all_tokens(value[fmt_start:])
    formats = tuple(value[fmt_start + a : fmt_start + b] for a, b in spans)
    protocol = value[r0:r1]
    pts: list[int] = []
    if protocol in RTP_PROTOCOLS:
        for a, _ in spans:
            # strtoul reads from the token start, so an empty token picks up the next number.
            pt, _end = c_strtol(value, fmt_start + a)
            if pt is None or not 0 <= pt <= 127:
                return None
            pts.append(pt)
    return MediaLine(
        value[t0:t1], port, count, protocol, formats, tuple(pts), (p0, p1), (r0, r1), fmt_start
    )


def _attr_names(attrs: tuple[Line, ...]) -> list[str]:
    return [line.attribute[0] for line in attrs]


def _is_ice(name: str) -> bool:
    # rtpengine 10.5 takes part in ICE only when the SDP has an ICE ufrag: candidates,
    # ice-options or ice-lite alone are just stripped (measured).
    return name == "ice-ufrag"


def _direction(media: set[str], session: set[str]) -> str | None:
    """rtpengine's precedence: recvonly beats sendonly beats inactive, each media then session."""
    for word in ("recvonly", "sendonly", "inactive", "sendrecv"):
        if word in media or word in session:
            return word
    return None


def _media_section(
    lines: list[Line], session_attrs: tuple[Line, ...], session_conn: Connection | None
) -> MediaSection:
    m = parse_media_line(lines[0].value)
    assert m is not None  # checked while walking the lines
    conn = None
    values: list[tuple[str, str | None]] = []
    for line in lines:
        kind = line.kind
        if kind == "a":
            values.append(line.attribute)
        elif kind == "c" and conn is None:
            found = parse_connection(line.value)
            if found:
                conn = found[0]
    # One pass for the first value of each attribute the views need (as `next(...)` would).
    ptime = rtcp = mid = None
    for n, v in values:
        if n == "ptime":
            if ptime is None and v is not None:
                ptime = str_to_i(v, 0)
        elif n == "rtcp":
            if rtcp is None:
                rtcp = parse_rtcp(v)
        elif n == "mid" and mid is None and v is not None:
            mid = v
    names = {n for n, _ in values}
    session_names = {line.attribute[0] for line in session_attrs}
    rtpmap, fmtp, rtcp_fb = _codec_maps(values)
    return MediaSection(
        lines=tuple(lines),
        media_type=m.media_type,
        port=m.port,
        port_count=m.port_count,
        protocol=m.protocol,
        formats=m.formats,
        payload_types=m.payload_types,
        connection=conn,
        effective_connection=conn or session_conn,
        direction=_direction(names, session_names),
        ptime=ptime or None,
        rtcp_mux="rtcp-mux" in names,
        rtcp_port=rtcp[0] if rtcp else None,
        rtcp_connection=rtcp[1] if rtcp else None,
        ice=_has_ice(names) or _has_ice(session_names),
        crypto="crypto" in names,
        fingerprint="fingerprint" in names or "fingerprint" in session_names,
        setup="setup" in names or "setup" in session_names,
        mid=mid,
        end_of_candidates="end-of-candidates" in names,
        rtpmap=rtpmap,
        fmtp=fmtp,
        rtcp_fb=rtcp_fb,
    )


def _has_ice(names: set[str]) -> bool:
    return any(_is_ice(n) for n in names)


def _codec_maps(
    values: list[tuple[str, str | None]],
) -> tuple[Mapping[int, Rtpmap], Mapping[int, str], Mapping[int, tuple[str, ...]]]:
    """rtpmap, fmtp (later lines win, as in rtpengine's hash tables) and rtcp-fb per PT."""
    rtpmap: dict[int, Rtpmap] = {}
    fmtp: dict[int, str] = {}
    rtcp_fb: dict[int, list[str]] = {}
    for name, value in values:
        if name == "rtpmap" and (r := parse_rtpmap(value)) is not None:
            rtpmap[r.payload_type] = r
        elif name == "fmtp" and (f := parse_fmtp(value)) is not None:
            fmtp[f[0]] = f[1]
        elif name == "rtcp-fb" and (fb := parse_rtcp_fb(value)) is not None:
            rtcp_fb.setdefault(fb[0], []).append(fb[1])
    return (
        MappingProxyType(rtpmap),
        MappingProxyType(fmtp),
        MappingProxyType({k: tuple(v) for k, v in rtcp_fb.items()}),
    )
