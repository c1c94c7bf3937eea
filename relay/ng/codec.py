"""The ng wire format: `<cookie> SP <bencode or JSON body>` (docs/spec/ng-protocol.md §1). Pure.

Bencode is hand-written rather than taken from bencode.py for three reasons, each a place where
rtpengine 10.5 differs from the strict format and Kamailio-facing behaviour must match it:

* replies keep dict insertion order (`d3:sdp...6:result2:oke`); bencode.py sorts keys;
* requests are decoded leniently like rtpengine's `__bencode_decode`: trailing bytes after the
  top-level value are ignored, a dict or list that runs into the end of the input without its
  `e` is accepted, integers follow C `strtoll` (`i 5e`, `i+5e`, `i-0e` are accepted, out of range
  values clamp), and for a repeated key the first value wins;
* TCP message boundaries come from rtpengine's separate, even more lenient `bencode_valid`
  scanner (`_valid_*` below), which decides only where one message ends.

Byte strings become `str` through UTF-8 with `surrogateescape`, so any bytes survive a round
trip through decode and encode. JSON bodies are relay.ng.jsonbody.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..cint import strtoll, strtoull
from .errors import (
    BAD_BENCODE,
    BAD_JSON,
    INVALID_FORMAT,
    INVALID_NO_PAYLOAD,
    NO_COMMAND,
    BencodeError,
    NgError,
)
from .jsonbody import json_decode_body, json_encode

__all__ = [
    "BAD_BENCODE",
    "BAD_JSON",
    "INVALID_FORMAT",
    "INVALID_NO_PAYLOAD",
    "NO_COMMAND",
    "NgRequest",
    "TcpFramer",
    "bencode_decode",
    "bencode_encode",
    "bencode_valid",
    "encode_reply",
    "error_reply",
    "json_decode_body",
    "json_encode",
    "parse_body",
    "parse_request",
    "split_cookie",
    "split_tcp",
]


TCP_BUFFER_LIMIT = 1024
"""More than this many bytes of an unfinished TCP message close the connection (§1.3)."""

_C_SPACE = b" \t\n\v\f\r"
_MAX_DEPTH = 200  # TCP completeness scan only (recursive); decoding has no nesting limit


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


# --- bencode encoding -----------------------------------------------------------------------


def bencode_encode(value: Any) -> bytes:
    """Bencode `value` keeping dict order; str is UTF-8 (surrogateescape), bool is an int."""
    # Built as text and encoded once: an ASCII string's length is its byte length, so the
    # common case needs no per-item `encode` (the delete reply has a few hundred items).
    out: list[str] = []
    _encode_into(value, out)
    return "".join(out).encode("utf-8", "surrogateescape")


def _string(value: str | bytes | bytearray) -> str:
    """`<byte length>:<text>` for any str or bytes (bytes travel as surrogateescape text)."""
    if not isinstance(value, str):
        value = bytes(value).decode("utf-8", "surrogateescape")
    if value.isascii():
        return f"{len(value)}:{value}"
    return f"{len(value.encode('utf-8', 'surrogateescape'))}:{value}"


_KEYS: dict[Any, str] = {}
"""Encoded dict keys seen so far (bounded): "local port", "packets", … recur in every reply."""


_ATOMS: dict[str | int, str] = {}
"""Encoded str/int values seen so far (bounded): "IPv4", "RTP", "filled", 0 … recur too."""


def _atom(item: str | int) -> str:
    """Encode one str or int (exact types) and remember short ones."""
    if type(item) is int:
        piece = f"i{item}e"
    else:
        assert isinstance(item, str)
        piece = _string(item)
        if len(item) > 40:
            return piece
    if len(_ATOMS) < 2048:
        _ATOMS[item] = piece
    return piece


def _encode_into(value: Any, out: list[str]) -> None:
    # Exact-type checks first, scalars inlined in the container loops: replies are mostly
    # str/int/dict/list, and this runs for every key and value of every reply.
    append = out.append
    t = type(value)
    if t is dict:
        append("d")
        for key, item in value.items():
            piece = _KEYS.get(key)
            if piece is not None:
                append(piece)
            elif type(key) is str and key.isascii():
                piece = f"{len(key)}:{key}"
                if len(_KEYS) < 512:  # reply keys are a small fixed set (tags are not)
                    _KEYS[key] = piece
                append(piece)
            elif isinstance(key, (str, bytes)):
                append(_string(key))
            else:
                raise BencodeError(f"dict key {key!r} is not a string")
            ti = type(item)
            if ti is str or ti is int:
                append(_ATOMS.get(item) or _atom(item))
            else:
                _encode_into(item, out)
        append("e")
    elif t is list or t is tuple:
        append("l")
        for item in value:
            ti = type(item)
            if ti is str or ti is int:
                append(_ATOMS.get(item) or _atom(item))
            else:
                _encode_into(item, out)
        append("e")
    elif isinstance(value, (str, bytes, bytearray)):
        append(_string(value))
    elif isinstance(value, int):
        append(f"i{int(value)}e")  # bool too: i1e / i0e
    elif isinstance(value, dict):
        _encode_into(dict(value), out)
    elif isinstance(value, (list, tuple)):
        _encode_into(list(value), out)
    else:
        raise BencodeError(f"cannot bencode {type(value).__name__} value {value!r}")


# --- lenient bencode decoding (rtpengine's __bencode_decode) --------------------------------

_END = object()  # the `e` that closes a list or dict


def bencode_decode(data: bytes) -> Any:
    """Decode the first bencode value of `data`; whatever follows it is ignored."""
    if data[:1] == b"d" and data.isascii():
        fast = _decode_ascii_dict(data.decode("ascii"))
        if fast is not None:
            return fast
    value, _ = _decode(data, 0)
    if value is _END:
        raise BencodeError("unexpected 'e' at offset 0")
    return value


_PLAIN_INT = re.compile(r"0|-?[1-9][0-9]{0,17}")


def _decode_ascii_dict(text: str) -> dict[str, Any] | None:
    """The hot path for well-formed ASCII requests (every Kamailio request): one loop, no
    recursion, str slicing instead of per-string decoding. Returns None on anything unusual
    (non-canonical or huge integers, a dict or list cut off by the end of the input, a key
    without a value, any error); `_decode` then gives the lenient result or the error.
    Not bencode.py on this path either: it is strict where rtpengine is lenient (see the module
    docstring), and being pure Python itself it is slower than this single loop.
    """
    n = len(text)
    find = text.find
    root: dict[str, Any] = {}
    cur: Any = root
    is_dict = True
    key: str | None = None
    stack: list[tuple[Any, bool, str | None]] = []
    pos = 1
    value: Any
    while pos < n:
        c = text[pos]
        if "1" <= c <= "9":  # strings first: most tokens are
            colon = find(":", pos)
            digits = text[pos:colon]
            if colon < 0 or not digits.isdigit() or len(digits) > 18:
                return None
            end = colon + 1 + int(digits)
            if end > n:
                return None
            value = text[colon + 1 : end]
            pos = end
        elif c == "e":
            if key is not None:
                return None
            if not stack:
                return root
            cur, is_dict, key = stack.pop()
            pos += 1
            continue
        elif c == "0":
            if text[pos + 1 : pos + 2] != ":":
                return None
            value = ""
            pos += 2
        elif is_dict and key is None:
            return None  # a key that is not a string
        elif c == "i":
            end = find("e", pos)
            if end < 0 or not _PLAIN_INT.fullmatch(text, pos + 1, end):
                return None
            value = int(text[pos + 1 : end])
            pos = end + 1
        elif c == "d" or c == "l":
            value = {} if c == "d" else []
            if is_dict:
                cur.setdefault(key, value)
            else:
                cur.append(value)
            stack.append((cur, is_dict, None))
            cur, is_dict, key = value, c == "d", None
            pos += 1
            continue
        else:
            return None
        if not is_dict:
            cur.append(value)
        elif key is None:
            key = value
        else:
            cur.setdefault(key, value)  # rtpengine's lookup finds the first of repeated keys
            key = None
    return None


def _scalar(data: bytes, pos: int) -> tuple[Any, int]:
    """One non-container token at `pos`: an int, a string, or the `e` that closes a container."""
    lead = data[pos]
    if lead == 0x69:  # i
        return _decode_int(data, pos + 1)
    if lead == 0x65:  # e
        return _END, pos + 1
    if 0x30 <= lead <= 0x39:
        raw, end = _decode_bytes(data, pos)
        return _text(raw), end
    raise BencodeError(f"unexpected byte {data[pos:pos + 1]!r} at offset {pos}")


def _decode(data: bytes, pos: int, depth: int = 0) -> tuple[Any, int]:
    """rtpengine's recursive `__bencode_decode`, as a loop: rtpengine has no nesting limit (a
    UDP datagram holds at most ~32k levels), so neither may Python's recursion limit impose one.
    Running out of input ends every open container; a dict key needs a value."""
    if pos >= len(data):
        raise BencodeError(f"input ends at offset {pos} where a value should start")
    n = len(data)
    # Each frame: [container, key-or-None]; the key slot is None for lists and between pairs.
    stack: list[list[Any]] = []
    while True:
        lead = data[pos]
        if lead == 0x64 or lead == 0x6C:  # d or l: open a container
            value: Any = {} if lead == 0x64 else []
            pos += 1
            if stack:
                _attach(stack[-1], value, pos)
            stack.append([value, None])
        else:
            value, pos = _scalar(data, pos)
            if not stack:
                return value, pos
            frame = stack[-1]
            container, key = frame
            if value is _END:
                if key is not None:
                    raise BencodeError(f"dict key {key!r} has no value")
                stack.pop()
                value = container
                if not stack:
                    return value, pos
            elif isinstance(container, dict) and key is None:
                if not isinstance(value, str):
                    raise BencodeError(f"dict key before offset {pos} is not a string")
                frame[1] = value
            else:
                _attach(frame, value, pos)
        # Running out of input closes the open containers (a pending key has no value).
        while pos >= n:
            container, key = stack.pop()
            if key is not None:
                raise BencodeError(f"dict key {key!r} has no value")
            if not stack:
                return container, pos


def _attach(frame: list[Any], value: Any, pos: int) -> None:
    container, key = frame
    if isinstance(container, list):
        container.append(value)
    elif key is None:
        raise BencodeError(f"dict key before offset {pos} is not a string")
    else:
        container.setdefault(key, value)  # rtpengine's lookup finds the first of repeated keys
        frame[1] = None


def _decode_int(data: bytes, pos: int) -> tuple[int, int]:
    """After the `i`: `0` directly, else C strtoll (spaces, sign, digits), then `e`."""
    start = pos
    if data[pos : pos + 1] == b"0":
        value, pos = 0, pos + 1
    else:
        while pos < len(data) and data[pos] in _C_SPACE:
            pos += 1
        negative = data[pos : pos + 1] == b"-"
        if data[pos : pos + 1] in (b"+", b"-"):
            pos += 1
        digits_at = pos
        while pos < len(data) and 0x30 <= data[pos] <= 0x39:
            pos += 1
        if pos == digits_at:
            raise BencodeError(f"integer at offset {start - 1} has no digits")
        value = strtoll((b"-" if negative else b"") + data[digits_at:pos])
    if data[pos : pos + 1] != b"e":
        raise BencodeError(f"integer at offset {start - 1} does not end with 'e'")
    return value, pos + 1


def _decode_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    start = pos
    if data[pos] == 0x30:
        length, pos = 0, pos + 1
    else:
        while pos < len(data) and 0x30 <= data[pos] <= 0x39:
            pos += 1
        length = strtoull(data[start:pos])  # no leading 0 here: huge = past the end
    if data[pos : pos + 1] != b":":
        raise BencodeError(f"string length at offset {start} is not followed by ':'")
    end = pos + 1 + length
    if end > len(data):
        raise BencodeError(f"string at offset {start} needs {length} bytes, input is shorter")
    return data[pos + 1 : end], end


# --- TCP completeness check (rtpengine's bencode_valid) -------------------------------------

NEED_MORE = -1
INVALID = -2


def bencode_valid(data: bytes) -> int:
    """Length of the first bencode value in `data`, NEED_MORE (-1) or INVALID (-2).

    A port of rtpengine's scanner, which is laxer than its decoder (dict keys need digits but
    no colon check, `03:` is fine); the decoder later rejects what it cannot read. Bytes past
    the end read as NUL, like the NUL that terminates rtpengine's GString buffer. One rtpengine
    bug is not copied: a string missing exactly its last byte counts as incomplete here, where
    rtpengine claims a length one past its buffer.
    """
    try:
        return _valid_next(data, 0, 0)
    except RecursionError:  # pragma: no cover - _MAX_DEPTH keeps us far from it
        return INVALID


def _at(data: bytes, pos: int) -> int:
    return data[pos] if pos < len(data) else 0


def _valid_next(data: bytes, pos: int, depth: int) -> int:
    if pos >= len(data):
        return NEED_MORE
    if depth > _MAX_DEPTH:
        return INVALID
    lead = data[pos]
    if lead == 0x69:
        return _valid_int(data, pos)
    if lead in (0x6C, 0x64):
        return _valid_container(data, pos, depth + 1, is_dict=lead == 0x64)
    if 0x30 <= lead <= 0x39:
        return _valid_string(data, pos)
    return INVALID


def _valid_string(data: bytes, pos: int) -> int:
    if not 0x30 <= _at(data, pos) <= 0x39:
        return INVALID
    colon = pos
    while colon < len(data) and 0x30 <= data[colon] <= 0x39:
        colon += 1
    if colon == len(data):
        return NEED_MORE
    end = colon + 1 + strtoull(data[pos:colon])  # strtoul: a huge length waits for more
    return NEED_MORE if end > len(data) else end


def _valid_int(data: bytes, pos: int) -> int:
    if _at(data, pos + 1) == 0x2D:  # '-'
        if pos + 3 < len(data) and data[pos + 2] == 0x30 and data[pos + 3] == 0x65:
            return INVALID  # i-0e
        pos += 1
    if _at(data, pos + 1) == 0x65:
        return INVALID  # ie
    if _at(data, pos + 1) == 0x30:
        return pos + 3 if pos + 2 < len(data) and data[pos + 2] == 0x65 else INVALID
    cur = pos + 1
    while cur < len(data) and data[cur] != 0x65:
        if not 0x30 <= data[cur] <= 0x39:
            return INVALID
        cur += 1
    return NEED_MORE if cur == len(data) else cur + 1


def _valid_container(data: bytes, pos: int, depth: int, *, is_dict: bool) -> int:
    pos += 1
    while pos < len(data) and data[pos] != 0x65:
        if is_dict:
            pos = _valid_string(data, pos)
            if pos < 0:
                return pos
        pos = _valid_next(data, pos, depth)
        if pos < 0:
            return pos
    return NEED_MORE if pos >= len(data) else pos + 1


# --- requests and replies -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NgRequest:
    """One decoded request: the cookie bytes, the body dict, and whether it came as JSON."""

    cookie: bytes
    body: dict[str, Any]
    is_json: bool

    @property
    def command(self) -> str:
        return str(self.body["command"])


def split_cookie(datagram: bytes) -> tuple[bytes, bytes] | None:
    """(cookie, body bytes), or None when rtpengine sends no reply at all (no cookie)."""
    space = datagram.find(b" ")
    if space <= 0:
        return None
    return datagram[:space], datagram[space + 1 :]


def parse_body(cookie: bytes, data: bytes) -> NgRequest:
    """Decode the part after the cookie; malformed bodies raise NgError with rtpengine's text."""
    if not data:
        raise NgError(INVALID_NO_PAYLOAD, cookie=cookie)
    is_json = data[0] == 0x7B  # '{'
    if data[0] == 0x64:  # 'd'
        try:
            body = bencode_decode(data)
        except BencodeError:
            raise NgError(BAD_BENCODE, cookie=cookie) from None
    elif is_json:
        try:
            body = json_decode_body(data)
        except NgError as exc:
            raise NgError(exc.reason, cookie=cookie, is_json=True) from None
    else:
        raise NgError(INVALID_FORMAT, cookie=cookie)
    if not isinstance(body.get("command"), str):
        raise NgError(NO_COMMAND, cookie=cookie, is_json=is_json)
    return NgRequest(cookie, body, is_json)


def parse_request(datagram: bytes) -> NgRequest | None:
    """A whole datagram → NgRequest; None = no reply at all; NgError = send its error reply."""
    split = split_cookie(datagram)
    if split is None:
        return None
    return parse_body(*split)


def error_reply(reason: str) -> dict[str, Any]:
    """The only shape an ng error reply has (§2.2)."""
    return {"result": "error", "error-reason": reason}


def encode_reply(cookie: bytes, reply: dict[str, Any], is_json: bool) -> bytes:
    """`<cookie> SP <body>`, the body in the request's encoding."""
    body = json_encode(reply) if is_json else bencode_encode(reply)
    return cookie + b" " + body


# --- TCP framing ----------------------------------------------------------------------------


def split_tcp(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Cut complete messages off the front of a TCP buffer (§1.3): (messages, leftover).

    A message is everything up to the first space plus one complete bencode value after it.
    Bytes between messages become part of the next cookie, and a body that is not bencode
    (JSON included) never completes, exactly as in rtpengine.
    """
    messages: list[bytes] = []
    while True:
        space = buffer.find(b" ")
        if space < 0:
            break
        size = bencode_valid(buffer[space + 1 :])
        if size < 0:
            break
        end = space + 1 + size
        messages.append(buffer[:end])
        buffer = buffer[end:]
    return messages, buffer


class TcpFramer:
    """Per-connection buffer: `feed` returns the complete messages; `overflowed` = close now."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        messages, self._buffer = split_tcp(self._buffer + data)
        return messages

    @property
    def pending(self) -> bytes:
        return self._buffer

    @property
    def overflowed(self) -> bool:
        """rtpengine closes without a reply when an unfinished message exceeds 1024 bytes."""
        return len(self._buffer) > TCP_BUFFER_LIMIT
