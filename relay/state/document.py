"""The stored form of one call's state, version 1 (docs/design/redis-state.md): JSON, UTF-8.

Pure: bytes in, `CallDocument` out, and back; `DocumentError` names what is wrong with bad
input (never a KeyError/TypeError from deep inside).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any

VERSION = 1

Address = tuple[str, int]


class DocumentError(ValueError):
    """The bytes are not a call document this version reads."""


@dataclass(slots=True)
class Entry:
    """One journalled ng request: when it came (wall clock), from where, the bencoded request,
    the ports it took, in allocation order ((local address, first port)), and every wall-clock
    time the call model read while handling it, in order (call/party `created`, `last signal`,
    a delete's deadline: a replay gives back the same values)."""

    t: float
    src: Address
    body: bytes
    ports: tuple[Address, ...] = ()
    clock: tuple[float, ...] = ()
    error: str | None = None
    """The error reply's reason of a request that failed but created the call (an offer whose
    SDP had no usable media still makes the call and its parties); None: it succeeded."""


@dataclass(slots=True)
class CallDocument:
    call_id: str
    node: str
    seed: bytes
    created: float
    ng: list[Entry] = field(default_factory=list)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    """"<local address>:<port>" → {"peer": [host, port], "srtp": {...}, "ice": {...}}."""
    extra: dict[str, Any] = field(default_factory=dict)
    """State other parts own (the recorder: "recording"), JSON values."""


def media_key(address: str, port: int) -> str:
    return f"{address}:{port}"


def split_media_key(key: str) -> Address:
    """"127.0.0.1:30000" / "::1:30000" → (address, port); DocumentError if malformed."""
    address, sep, port = key.rpartition(":")
    if not sep or not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise DocumentError(f"media key {key!r} is not <address>:<port>")
    return address, int(port)


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_string: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise DocumentError(f"{value!r} is not a time")
    return repr(float(value))  # what json writes for a float


def _object(value: dict[str, Any]) -> str:
    return _dumps(value) if value else "{}"


def encode_entry(e: Entry) -> str:
    """One `ng` entry's JSON text (the journal keeps it: a document is re-encoded on every
    change, its entries never change). Written by hand: the generic encoder costs more than
    the rest of the journal on every request."""
    ports = ",".join(f"[{_string(a)},{int(p)}]" for a, p in e.ports)
    clock = ",".join(_float(t) for t in e.clock)
    body = base64.b64encode(e.body).decode("ascii")
    error = "" if e.error is None else f',"error":{_string(e.error)}'
    return (f'{{"t":{_float(e.t)},"src":[{_string(e.src[0])},{int(e.src[1])}],'
            f'"body":"{body}","ports":[{ports}],"clock":[{clock}]{error}}}')


def encode(doc: CallDocument, entries: list[str] | None = None) -> bytes:
    """The document's bytes; `entries`: its entries' `encode_entry` texts, if kept."""
    try:
        ng = entries if entries is not None else [encode_entry(e) for e in doc.ng]
        text = (f'{{"v":{VERSION},"call_id":{_string(doc.call_id)},'
                f'"node":{_string(doc.node)},"seed":"{doc.seed.hex()}",'
                f'"created":{_float(doc.created)},"ng":[{",".join(ng)}],'
                f'"media":{_object(doc.media)},"extra":{_object(doc.extra)}}}')  # fmt: skip
        return text.encode("utf-8", "surrogatepass")
    except (TypeError, ValueError) as exc:
        raise DocumentError(f"cannot encode the document of {doc.call_id!r}: {exc}") from None


def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise DocumentError(f"{where}: no {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise DocumentError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _time(obj: dict[str, Any], key: str, where: str) -> float:
    value = float(_need(obj, key, (int, float), where))
    if not math.isfinite(value) or value < 0:
        raise DocumentError(f"{where}: {key!r} is not a time")
    return value


def _address(value: Any, where: str) -> Address:
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], str)
            or not isinstance(value[1], int) or isinstance(value[1], bool)
            or not 0 <= value[1] < 65536):  # fmt: skip
        raise DocumentError(f"{where}: not an [address, port] pair")
    return value[0], value[1]


def _entry(raw: Any, n: int) -> Entry:
    where = f"ng[{n}]"
    if not isinstance(raw, dict):
        raise DocumentError(f"{where}: not an object")
    try:
        body = base64.b64decode(_need(raw, "body", str, where), validate=True)
    except (binascii.Error, ValueError):
        raise DocumentError(f"{where}: body is not base64") from None
    ports = _need(raw, "ports", list, where)
    clock = raw.get("clock", [])
    if not isinstance(clock, list):
        raise DocumentError(f"{where}: 'clock' has the wrong type ({type(clock).__name__})")
    times = tuple(_time({"clock": t}, "clock", where) for t in clock)
    error = raw.get("error")
    if error is not None and not isinstance(error, str):
        raise DocumentError(f"{where}: 'error' has the wrong type ({type(error).__name__})")
    return Entry(_time(raw, "t", where), _address(raw.get("src"), f"{where} src"), body,
                 tuple(_address(p, f"{where} ports") for p in ports), times, error)  # fmt: skip


def decode(data: bytes) -> CallDocument:
    """The document in `data`; DocumentError says why when it is not one (version included)."""
    try:
        obj = json.loads(data.decode("utf-8", "surrogatepass") if isinstance(data, bytes)
                         else data)  # fmt: skip
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DocumentError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DocumentError("not a JSON object")
    version = obj.get("v")
    if version != VERSION:
        raise DocumentError(f"document version {version!r}, this daemon reads {VERSION}")
    where = "document"
    try:
        seed = bytes.fromhex(_need(obj, "seed", str, where))
    except ValueError:
        raise DocumentError("document: seed is not hex") from None
    if len(seed) != 32:
        raise DocumentError(f"document: seed has {len(seed)} bytes, not 32")
    ng = [_entry(raw, n) for n, raw in enumerate(_need(obj, "ng", list, where))]
    media = _need(obj, "media", dict, where)
    for key, value in media.items():
        split_media_key(key)
        if not isinstance(value, dict):
            raise DocumentError(f"media {key!r}: not an object")
        if "peer" in value:
            _address(value["peer"], f"media {key!r} peer")
    return CallDocument(
        call_id=_need(obj, "call_id", str, where),
        node=_need(obj, "node", str, where),
        seed=seed,
        created=_time(obj, "created", where),
        ng=ng,
        media=media,
        extra=_need(obj, "extra", dict, where),
    )
