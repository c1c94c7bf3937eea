"""The ng commands rtpvault does not carry out yet, answered with rtpengine 10.5's own errors up to
the point where rtpengine would act (call_interfaces.c: `media_block_match`, `publish`,
`subscribe …`, `unsubscribe`); only then "not supported by rtpvault". Also the party selection
and option reading the media commands share (relay.ng.media_commands).

rtpengine reads these requests with `call_ng_process_flags`, which walks every key in order: of
the spellings of one option the last one wins, and a value of the wrong type clears it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from relay.call.model import Call, Party
from relay.cint import strtoll
from relay.ng.errors import NgError

CALL_ID_KEYS = ("call-id", "call-ID", "call id", "call ID")
LABEL_KEYS = ("from-label", "label")


def option(body: dict[str, Any], *keys: str) -> str | None:
    """The string option under the last of `keys` present (None: absent or not a string)."""
    value: str | None = None
    for key, item in body.items():
        if key in keys:
            value = item if isinstance(item, str) else None
    return value


STRTOLL = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


def int_str(value: Any, default: int) -> int:
    """rtpengine's `bencode_get_integer_str`: an integer, or a string strtoll reads entirely."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = STRTOLL.match(value)
        if m and m.end() == len(value):
            return strtoll(m.group(1))
    return default


def flag_words(body: dict[str, Any]) -> set[str]:
    words = body.get("flags")
    if not isinstance(words, list):
        return set()
    return {w.replace(" ", "-") for w in words if isinstance(w, str)}


def not_supported(body: dict[str, Any]) -> NgError:
    return NgError(f"Command '{body.get('command')}' is not supported by rtpvault yet")


class Selector:
    """rtpengine's party selection for the generic commands, over rtpvault's call registry."""

    def __init__(
        self,
        calls: dict[str, Call],
        live_party: Callable[[Call, str | None], Party | None],
        all_parties: Callable[[Call], list[Party]],
    ) -> None:
        self.calls = calls
        self.live_party = live_party
        self.all_parties = all_parties

    def call(self, body: dict[str, Any]) -> Call:
        call_id = option(body, *CALL_ID_KEYS)
        if call_id is None:
            raise NgError("No call-id in message")
        call = self.calls.get(call_id)
        if call is None:
            raise NgError("Unknown call-ID")
        return call

    def one(self, call: Call, body: dict[str, Any]) -> Party | None:
        """`media_block_match1`: by label, else address, else from-tag; None = whole call."""
        label = option(body, *LABEL_KEYS)
        address = option(body, "address")
        from_tag = option(body, "from-tag")
        if label is not None:
            found = [p for p in self.all_parties(call) if p.label == label]
            if not found:
                raise NgError("No monologue matching the given label")
            return found[-1]
        if address is not None:
            try:
                wanted = ipaddress.ip_address(address)
            except ValueError:
                raise NgError("Failed to parse network address") from None
            for candidate in self.all_parties(call):
                for side in candidate.medias:
                    first = side.rtp or side.rtcp
                    peer = first.sdp_peer if first is not None else None
                    if peer is not None and _same_address(peer[0], wanted):
                        return candidate
            raise NgError("Failed to match address to any tag")
        if from_tag is not None:
            party = self.live_party(call, from_tag)
            if party is None:
                raise NgError("From-tag given, but no such tag exists")
            return party
        return None

    def match(self, body: dict[str, Any]) -> tuple[Call, Party | None, bool]:
        """`media_block_match`: (call, the selected party or None, `all` given)."""
        call = self.call(body)
        if "all" in flag_words(body):
            return call, None, True
        return call, self.one(call, body), False

    def match_many(self, body: dict[str, Any]) -> list[Party]:
        """`media_block_match_mult` (subscribe request)."""
        call = self.call(body)
        if "all" in flag_words(body):
            return [p for p in self.all_parties(call) if p.tag]
        party = self.one(call, body)
        if party is not None:
            return [party]
        tags = body.get("from-tags")
        found = []
        if isinstance(tags, list):
            for tag in tags:
                party = self.live_party(call, tag) if isinstance(tag, str) else None
                if party is not None:
                    found.append(party)
        if not found:
            raise NgError("No monologues matched")
        return found


def _same_address(text: str, wanted: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text) == wanted
    except ValueError:
        return False


def dtmf_code(body: dict[str, Any]) -> int:
    """`play DTMF`'s `code`/`digit` (a C char: a digit character or a code 0-15) → 0..15."""
    digit = -1  # rtpengine's default: no digit given is out of range
    for key, value in body.items():
        if key not in ("code", "digit"):
            continue
        digit = int_str(value, digit)
        if isinstance(value, str) and len(value.encode("utf-8", "surrogateescape")) == 1:
            digit = value.encode("utf-8", "surrogateescape")[0]
        digit = (digit + 128) % 256 - 128
    if 0 <= digit <= 15:
        return digit
    char = chr(digit) if digit > 0 else ""
    if "0" <= char <= "9":
        return ord(char) - ord("0")
    if char == "*":
        return 10
    if char == "#":
        return 11
    if "A" <= char <= "D":
        return ord(char) - ord("A") + 12
    raise NgError("Out of range 'code' specified")
