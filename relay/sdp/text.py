"""Low-level text helpers that mimic the C functions rtpengine 10.5's SDP parser is built on.

rtpengine tokenises with `str_token_sep` (split at single spaces, empty tokens allowed) and reads
numbers with `strtol`/`strtoul`, which skip leading white space and stop at the first non-digit.
Reproducing those quirks is what makes our output match its output byte for byte (for example
`m=audio 1 RTP/AVP 0  8` lists PT 8 twice, because the empty token between the two spaces is
read by strtoul as " 8").
"""

from __future__ import annotations

import ipaddress
import re

from relay.cint import strtoll


def tokens(value: str, limit: int) -> tuple[list[tuple[int, int]], int] | None:
    """Split off `limit` tokens at single spaces: their (start, end) spans and the rest's start.

    Mirrors EXTRACT_TOKEN: the last token may run to the end of the text; None when the text runs
    out before `limit` tokens were found (rtpengine's parse error).
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    for _ in range(limit):
        if pos >= len(value):
            return None
        sep = value.find(" ", pos)
        if sep < 0:
            spans.append((pos, len(value)))
            pos = len(value)
        else:
            spans.append((pos, sep))
            pos = sep + 1
    return spans, pos


def all_tokens(value: str) -> list[tuple[int, int]]:
    """Every token of a space-separated list, as the m= format loop of rtpengine walks it."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos < len(value):
        sep = value.find(" ", pos)
        if sep < 0:
            spans.append((pos, len(value)))
            break
        spans.append((pos, sep))
        pos = sep + 1
    return spans


_STRTOL = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


def c_strtol(text: str, start: int = 0) -> tuple[int | None, int]:
    """C strtol(…, 10) from `start`: (value, index after the digits); (None, start) if no digits."""
    found = _STRTOL.match(text, start)
    if found is None:
        return None, start
    return strtoll(found.group(1)), found.end()


def str_to_i(text: str, default: int) -> int:
    """rtpengine's str_to_i: a leading integer (within C int range), else `default`."""
    value, _ = c_strtol(text)
    if value is None or not -(2**31) <= value < 2**31:
        return default
    return value


_IP_SEEN: dict[tuple[str, str], bool] = {}
"""Memo of `parse_ip`: the same few addresses appear in every SDP (bounded by clearing)."""


def parse_ip(family: str, address: str) -> bool:
    """Whether inet_pton would accept `address` for SDP address type `family` (IP4/IP6)."""
    key = (family, address)
    known = _IP_SEEN.get(key)
    if known is None:
        if len(_IP_SEEN) > 4096:
            _IP_SEEN.clear()
        known = _IP_SEEN[key] = _inet_pton_accepts(family, address)
    return known


def _inet_pton_accepts(family: str, address: str) -> bool:
    try:
        if family == "IP4":
            ipaddress.IPv4Address(address)
            return True
        if family == "IP6":
            # inet_pton knows no zone ids; ipaddress would accept "fe80::1%eth0".
            if "%" in address:
                return False
            ipaddress.IPv6Address(address)
            return True
    except ValueError:
        return False
    return False


def unspecified(family: str) -> str:
    """The all-zero address rtpengine prints for a held stream (`c=IN IP4 0.0.0.0`)."""
    return "::" if family == "IP6" else "0.0.0.0"
