"""In-place edits of one line, shared by the session and media rewriters."""

from __future__ import annotations

from relay.sdp.attributes import parse_connection
from relay.sdp.model import Line
from relay.sdp.text import unspecified


def connection_line(line: Line, family: str, address: str, keep_zero: bool) -> str:
    """c=: `<addrtype> <address>` substituted; the net type and anything after stay."""
    parsed = parse_connection(line.value)
    if parsed is None:
        return line.text
    _conn, (start, end) = parsed
    printed = unspecified(family) if keep_zero else address
    return f"c={splice(line.value, [(start, end, f'{family} {printed}')])}{line.eol}"


def splice(value: str, edits: list[tuple[int, int, str]]) -> str:
    """Replace non-overlapping spans (given in order) of `value`."""
    out, pos = [], 0
    for start, end, text in edits:
        out.append(value[pos:start])
        out.append(text)
        pos = end
    out.append(value[pos:])
    return "".join(out)
