"""ng request and reply bodies in JSON, as rtpengine 10.5 reads them with json-glib and renders
its replies with json-glib 1.6 (compact, raw UTF-8, its particular escape set; strings end at the
first NUL byte). Pure. Hand-written on top of the stdlib `json` parser because the replies must
match json-glib's bytes, which no JSON library reproduces (docs/spec/ng-protocol.md §1).
"""

from __future__ import annotations

import json
from typing import Any

from ..cint import strtoll
from .errors import BAD_BENCODE, BAD_JSON, BencodeError, NgError

__all__ = ["json_decode_body", "json_encode"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _raw(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


class _Unsupported:
    """A JSON float: json-glib parses it, rtpengine's conversion to bencode refuses it."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not JSON")


def json_decode_body(data: bytes) -> dict[str, Any]:
    """A JSON object body → the same tree a bencode body gives (str, int, list, dict).

    Raises NgError with rtpengine's texts: unparsable → "Failed to parse JSON document";
    null or a float anywhere → "Could not decode bencode dictionary". Booleans become 0/1,
    strings end at their first NUL (rtpengine copies them as C strings).
    """
    try:
        tree = json.loads(
            data.decode("utf-8"),
            parse_float=lambda _text: _Unsupported(),
            parse_int=strtoll,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError):
        raise NgError(BAD_JSON, is_json=True) from None
    converted = _from_json(tree)
    if not isinstance(converted, dict):
        raise NgError(BAD_BENCODE, is_json=True)
    return converted


def _json_str(text: str) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    return _text(raw.split(b"\0", 1)[0])


def _from_json(node: Any) -> Any:
    if isinstance(node, str):
        return _json_str(node)
    if isinstance(node, bool):
        return int(node)
    if isinstance(node, int):
        return max(_INT64_MIN, min(_INT64_MAX, node))
    if isinstance(node, list):
        items = [_from_json(item) for item in node]
        return None if any(item is None for item in items) else items
    if isinstance(node, dict):
        result: dict[str, Any] = {}
        for key, value in node.items():
            converted = _from_json(value)
            if converted is None:
                return None
            result[_json_str(key)] = converted
        return result
    return None  # null, floats


# json-glib's json_strescape: short escapes, \u00XX for 0x01..0x1e and 0x7f (0x1f stays raw,
# a quirk of its `< 0x1f` test), everything else including non-ASCII UTF-8 passed through.
_JSON_ESCAPES: dict[int, bytes] = {
    0x22: b'\\"',
    0x5C: b"\\\\",
    0x08: b"\\b",
    0x0C: b"\\f",
    0x0A: b"\\n",
    0x0D: b"\\r",
    0x09: b"\\t",
}
for _code in [*range(0x01, 0x1F), 0x7F]:
    _JSON_ESCAPES.setdefault(_code, b"\\u%04x" % _code)
_JSON_TABLE = [_JSON_ESCAPES.get(code, bytes([code])) for code in range(256)]


def _json_string(value: str | bytes) -> bytes:
    raw = _raw(value).split(b"\0", 1)[0]
    return b'"' + b"".join(_JSON_TABLE[code] for code in raw) + b'"'


def json_encode(value: Any) -> bytes:
    """Render a reply tree as json-glib's generator does for rtpengine (compact, no spaces)."""
    if isinstance(value, (str, bytes)):
        return _json_string(value)
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, dict):
        members = (_json_string(k) + b":" + json_encode(v) for k, v in value.items())
        return b"{" + b",".join(members) + b"}"
    if isinstance(value, (list, tuple)):
        return b"[" + b",".join(json_encode(v) for v in value) + b"]"
    raise BencodeError(f"cannot render {type(value).__name__} value {value!r} as JSON")
