"""A plain ng client for tests: bencode over UDP (or TCP), one request, one reply."""

from __future__ import annotations

import itertools
import json
import socket
from typing import Any

import bencodepy

_counter = itertools.count(1)


def _to_bytes(obj: Any) -> Any:
    if isinstance(obj, str):
        return obj.encode()
    if isinstance(obj, dict):
        return {_to_bytes(k): _to_bytes(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_bytes(v) for v in obj]
    return obj


def to_str(obj: Any) -> Any:
    """Decoded bencode with byte strings as str (utf-8, surrogateescape), recursively."""
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "surrogateescape")
    if isinstance(obj, dict):
        return {to_str(k): to_str(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_str(v) for v in obj]
    return obj


def encode_ordered(obj: Any) -> bytes:
    """Bencode keeping dict insertion order, as Kamailio sends it (bencode.py sorts keys)."""
    if isinstance(obj, dict):
        return b"d" + b"".join(encode_ordered(k) + encode_ordered(v) for k, v in obj.items()) + b"e"
    if isinstance(obj, (list, tuple)):
        return b"l" + b"".join(encode_ordered(v) for v in obj) + b"e"
    if isinstance(obj, int):
        return b"i%de" % obj
    if isinstance(obj, str):
        obj = obj.encode("utf-8", "surrogateescape")
    return b"%d:%s" % (len(obj), obj)


class NgClient:
    """Talks ng to one daemon over UDP. `call()` returns the decoded reply dict (str keys)."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        self.sock.bind(("127.0.0.1", 0))

    def close(self) -> None:
        self.sock.close()

    def raw(self, datagram: bytes, expect_reply: bool = True) -> bytes | None:
        self.sock.sendto(datagram, self.addr)
        if not expect_reply:
            return None
        data, _ = self.sock.recvfrom(65535)
        return data

    def call_raw(self, body: dict[str, Any] | bytes, cookie: str | None = None) -> bytes:
        """Send one request; return the reply body bytes (cookie stripped and checked)."""
        ck = (cookie or f"t{next(_counter)}").encode()
        payload = body if isinstance(body, bytes) else encode_ordered(body)
        reply = self.raw(ck + b" " + payload)
        assert reply is not None
        assert reply.startswith(ck + b" "), reply[:80]
        return reply[len(ck) + 1 :]

    def call(self, body: dict[str, Any], cookie: str | None = None) -> dict[str, Any]:
        data = self.call_raw(body, cookie)
        if data.startswith(b"{"):
            return dict(json.loads(data))
        return dict(to_str(bencodepy.decode(data)))
