"""HEPv3 encoder and decoder (docs/spec/hep.md §1), pure: bytes in, objects out.

Hand-written: no maintained Python HEP library exists (the known ones are capture agents, not
codecs), and the format is a 6-byte header plus TLV chunks, all network byte order.

`encode` writes rtpengine 10.5's chunk order (§2.4: family, proto, ports, timestamp, protocol
type, capture id, addresses, [auth key], correlation id, payload) so Kamailio's `sipcapture`,
which reads the correlation id as a C string, always finds a 0x00 byte after it (the next
chunk's vendor id). Timestamps are written big-endian — some rtpengine versions wrote them in
host order and Homer filed the data under the year 2106.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass, field

__all__ = ["HepPacket", "HepError", "encode", "decode", "PROTO_RTCP_JSON", "PROTO_QOS_REPORT",
           "PROTO_NG_TRACE", "MAX_PACKET"]  # fmt: skip

MAGIC = b"HEP3"
MAX_PACKET = 65535
PROTO_RTCP_JSON = 5
PROTO_QOS_REPORT = 34  # "rtpagent" MOS report: heplify-server → hep_proto_35_default
PROTO_NG_TRACE = 61  # upstream rtpengine's default for ng traces (--homer-ng-capture-proto)

_HDR = struct.Struct("!4sH")
_CHUNK = struct.Struct("!HHH")
_U8, _U16, _U32 = struct.Struct("!B"), struct.Struct("!H"), struct.Struct("!I")


class HepError(ValueError):
    """Bytes that are not a valid HEPv3 packet; the message names the defect."""


@dataclass(frozen=True, slots=True)
class HepPacket:
    """One HEPv3 packet: the generic chunks rtpengine and Homer use, the others in `extra`."""

    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int
    ts_sec: int
    ts_usec: int
    proto_type: int
    capture_id: int
    payload: bytes
    correlation_id: bytes | None = None
    ip_proto: int = 17
    auth_key: bytes | None = None
    agent_name: bytes | None = None
    extra: dict[tuple[int, int], bytes] = field(default_factory=dict)
    """Chunks this codec has no field for, (vendor, type) → raw payload (decode only)."""

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.src_ip else socket.AF_INET

    @property
    def timestamp(self) -> float:
        return self.ts_sec + self.ts_usec / 1e6


def _chunk(ctype: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PACKET - 12:
        raise HepError(f"chunk {ctype:#06x} of {len(payload)} bytes exceeds the HEP maximum of "
                       f"{MAX_PACKET}")
    return _CHUNK.pack(0, ctype, 6 + len(payload)) + payload


def encode(p: HepPacket) -> bytes:
    """The packet's bytes; raises HepError for values that cannot be encoded."""
    try:
        src, dst = ipaddress.ip_address(p.src_ip), ipaddress.ip_address(p.dst_ip)
    except ValueError as exc:
        raise HepError(f"bad address: {exc}") from None
    if src.version != dst.version:
        raise HepError("source and destination addresses are of different families")
    v6 = src.version == 6
    try:
        chunks = [
            _chunk(0x01, _U8.pack(socket.AF_INET6 if v6 else socket.AF_INET)),
            _chunk(0x02, _U8.pack(p.ip_proto)),
            _chunk(0x07, _U16.pack(p.src_port)),
            _chunk(0x08, _U16.pack(p.dst_port)),
            _chunk(0x09, _U32.pack(p.ts_sec)),
            _chunk(0x0A, _U32.pack(p.ts_usec)),
            _chunk(0x0B, _U8.pack(p.proto_type)),
            _chunk(0x0C, _U32.pack(p.capture_id & 0xFFFFFFFF)),
            _chunk(0x05 if v6 else 0x03, src.packed),
            _chunk(0x06 if v6 else 0x04, dst.packed),
        ]
    except struct.error as exc:
        raise HepError(f"field out of range: {exc}") from None
    if p.auth_key is not None:
        chunks.append(_chunk(0x0E, p.auth_key))
    if p.agent_name is not None:
        chunks.append(_chunk(0x13, p.agent_name))
    if p.correlation_id is not None:
        chunks.append(_chunk(0x11, p.correlation_id))
    chunks.append(_chunk(0x0F, p.payload))
    body = b"".join(chunks)
    total = 6 + len(body)
    if total > MAX_PACKET:
        raise HepError(f"packet of {total} bytes exceeds the HEP maximum of {MAX_PACKET}")
    return _HDR.pack(MAGIC, total) + body


_FIXED = {0x01: 1, 0x02: 1, 0x03: 4, 0x04: 4, 0x05: 16, 0x06: 16, 0x07: 2, 0x08: 2, 0x09: 4,
          0x0A: 4, 0x0B: 1, 0x0C: 4}  # fmt: skip
_REQUIRED = {0x01: "IP family", 0x02: "IP protocol", 0x07: "source port",
             0x08: "destination port", 0x09: "timestamp seconds", 0x0A: "timestamp microseconds",
             0x0B: "protocol type", 0x0C: "capture id", 0x0F: "payload"}  # fmt: skip


def packet_length(data: bytes) -> int | None:
    """Total length announced by a HEPv3 header (TCP framing); None if fewer than 6 bytes."""
    if len(data) < 6:
        return None
    magic, total = _HDR.unpack_from(data)
    if magic != MAGIC:
        raise HepError(f"bad magic {magic!r} (expected b'HEP3')")
    if total < 6:
        raise HepError(f"total length {total} is shorter than the header")
    return int(total)


def decode(data: bytes) -> HepPacket:
    """Parse exactly one HEPv3 packet; raises HepError naming the first defect."""
    total = packet_length(data)
    if total is None:
        raise HepError(f"{len(data)} bytes: shorter than the 6-byte HEP header")
    if total != len(data):
        raise HepError(f"header says {total} bytes, packet has {len(data)}")
    fields: dict[int, bytes] = {}
    extra: dict[tuple[int, int], bytes] = {}
    off = 6
    while off < total:
        if total - off < 6:
            raise HepError(f"truncated chunk header at offset {off}")
        vendor, ctype, length = _CHUNK.unpack_from(data, off)
        if length < 6 or off + length > total:
            raise HepError(f"chunk {vendor}:{ctype:#06x} at offset {off} has bad length {length}")
        payload = bytes(data[off + 6 : off + length])
        if vendor == 0 and ctype in _FIXED and len(payload) != _FIXED[ctype]:
            raise HepError(
                f"chunk {ctype:#06x} must carry {_FIXED[ctype]} bytes, not {len(payload)}"
            )
        if vendor == 0:
            fields[ctype] = payload
        else:
            extra[(vendor, ctype)] = payload
        off += length
    for ctype, name in _REQUIRED.items():
        if ctype not in fields:
            raise HepError(f"missing chunk {ctype:#06x} ({name})")
    family = fields[0x01][0]
    if family == socket.AF_INET and 0x03 in fields and 0x04 in fields:
        src, dst = fields[0x03], fields[0x04]
    elif family == socket.AF_INET6 and 0x05 in fields and 0x06 in fields:
        src, dst = fields[0x05], fields[0x06]
    else:
        raise HepError(f"addresses missing for IP family {family}")
    known = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0E, 0x0F,
             0x11, 0x13}  # fmt: skip
    for ctype, payload in fields.items():
        if ctype not in known:
            extra[(0, ctype)] = payload
    return HepPacket(
        src_ip=str(ipaddress.ip_address(src)), dst_ip=str(ipaddress.ip_address(dst)),
        src_port=_U16.unpack(fields[0x07])[0], dst_port=_U16.unpack(fields[0x08])[0],
        ts_sec=_U32.unpack(fields[0x09])[0], ts_usec=_U32.unpack(fields[0x0A])[0],
        proto_type=fields[0x0B][0], capture_id=_U32.unpack(fields[0x0C])[0],
        payload=fields[0x0F], correlation_id=fields.get(0x11), ip_proto=fields[0x02][0],
        auth_key=fields.get(0x0E), agent_name=fields.get(0x13), extra=extra,
    )  # fmt: skip
