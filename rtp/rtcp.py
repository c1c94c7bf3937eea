"""RTCP compound packets (RFC 3550 §6.4, §6.5): SR, RR and SDES parsed; others kept as bytes.

`parse_compound` reads a whole compound packet and raises `RtcpError` at the first defect; the
error carries what was parsed before it (`parsed`), which is what `parse_leading` returns:
rtpengine exports the RTCP it read up to an error (docs/spec/hep.md §2.5). A broken SDES
packet contributes the items read before its defect. Every packet type dispatches through
`_DECODERS`; BYE, APP, XR and feedback stay `OtherPacket` (type, count, body).
`bytes(packet)` gives the wire form back, so `parse_compound(b"".join(map(bytes, ps))) == ps`.
Version 2 only; the padding bit is kept, not interpreted (padding bytes stay in the body).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "RtcpError",
    "ReportBlock",
    "SenderReport",
    "ReceiverReport",
    "SdesItem",
    "SdesChunk",
    "SourceDescription",
    "OtherPacket",
    "RtcpPacket",
    "parse_compound",
    "parse_leading",
]

SR, RR, SDES = 200, 201, 202
_HDR = struct.Struct("!BBH")
_SENDER = struct.Struct("!IIIIII")  # ssrc, ntp msw, ntp lsw, rtp ts, packets, octets
_BLOCK = struct.Struct("!IIIIII")  # ssrc, fraction+lost, highest seq, jitter, lsr, dlsr
_U32 = struct.Struct("!I")


class RtcpError(ValueError):
    """Malformed RTCP (the peer's fault). `parsed`: the packets read before the defect."""

    def __init__(self, message: str, parsed: tuple[RtcpPacket, ...] = ()) -> None:
        super().__init__(message)
        self.parsed = parsed


def _header(ptype: int, count: int, padding: bool, body: bytes) -> bytes:
    if not 0 <= count <= 31:
        raise RtcpError(f"type {ptype}: count {count} does not fit the 5-bit field")
    if len(body) % 4:
        raise RtcpError(f"type {ptype}: body of {len(body)} bytes is not a multiple of 4")
    return _HDR.pack(0x80 | padding << 5 | count, ptype, len(body) // 4) + body


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report (RFC 3550 §6.4.1): about source `ssrc`, from the reporter."""

    ssrc: int
    fraction_lost: int
    packets_lost: int
    """Cumulative number lost, the raw 24-bit field (not sign-extended)."""
    highest_seq: int
    jitter: int
    lsr: int
    dlsr: int

    def __bytes__(self) -> bytes:
        lost = self.fraction_lost << 24 | self.packets_lost
        return _BLOCK.pack(self.ssrc, lost, self.highest_seq, self.jitter, self.lsr, self.dlsr)


def _blocks(body: bytes, off: int, count: int, kind: str) -> tuple[ReportBlock, ...]:
    if off + _BLOCK.size * count > len(body):
        raise RtcpError(f"{kind} with {count} report blocks: the packet ends inside them")
    out = []
    for i in range(count):
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, off + _BLOCK.size * i)
        out.append(ReportBlock(ssrc, lost >> 24, lost & 0xFFFFFF, highest, jitter, lsr, dlsr))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (RFC 3550 §6.4.1): sender info and report blocks; `extension` is what follows them."""

    packet_type: ClassVar[int] = SR
    ssrc: int
    ntp_msw: int
    ntp_lsw: int
    rtp_timestamp: int
    packets: int
    octets: int
    blocks: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    padding: bool = False

    @classmethod
    def decode(cls, count: int, body: bytes, padding: bool) -> SenderReport:
        if len(body) < _SENDER.size:
            raise RtcpError(f"SR of {len(body) + 4} bytes: expected at least 28")
        blocks = _blocks(body, _SENDER.size, count, "SR")
        rest = body[_SENDER.size + _BLOCK.size * count :]
        ssrc, msw, lsw, rtp_ts, packets, octets = _SENDER.unpack_from(body)
        return cls(ssrc, msw, lsw, rtp_ts, packets, octets, blocks, rest, padding)

    def __bytes__(self) -> bytes:
        info = _SENDER.pack(self.ssrc, self.ntp_msw, self.ntp_lsw, self.rtp_timestamp,
                            self.packets, self.octets)  # fmt: skip
        body = info + b"".join(map(bytes, self.blocks)) + self.extension
        return _header(SR, len(self.blocks), self.padding, body)


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (RFC 3550 §6.4.2): the reporter's SSRC and its report blocks."""

    packet_type: ClassVar[int] = RR
    ssrc: int
    blocks: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    padding: bool = False

    @classmethod
    def decode(cls, count: int, body: bytes, padding: bool) -> ReceiverReport:
        if len(body) < 4:
            raise RtcpError(f"RR of {len(body) + 4} bytes: expected at least 8")
        blocks = _blocks(body, 4, count, "RR")
        rest = body[4 + _BLOCK.size * count :]
        return cls(_U32.unpack_from(body)[0], blocks, rest, padding)

    def __bytes__(self) -> bytes:
        body = _U32.pack(self.ssrc) + b"".join(map(bytes, self.blocks)) + self.extension
        return _header(RR, len(self.blocks), self.padding, body)


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item (RFC 3550 §6.5): type 1 CNAME, 2 NAME, 3 EMAIL …; text as sent."""

    type: int
    text: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.type <= 255 or len(self.text) > 255:
            raise RtcpError(f"SDES item type {self.type}, {len(self.text)} bytes: expected "
                            "type 1..255 and at most 255 bytes")  # fmt: skip


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The items about one SSRC/CSRC."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def __bytes__(self) -> bytes:
        out = bytearray(_U32.pack(self.ssrc))
        for item in self.items:
            out += bytes((item.type, len(item.text))) + item.text
        out += b"\0" * (4 - len(out) % 4)  # the null item, then up to the next 32-bit boundary
        return bytes(out)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (RFC 3550 §6.5). `count` is the header's SC (rtpengine exports it as sent); a
    chunk list cut short by a defect, or a chunk without its null item at the end, is kept."""

    packet_type: ClassVar[int] = SDES
    chunks: tuple[SdesChunk, ...] = ()
    count: int | None = None
    padding: bool = False

    @property
    def source_count(self) -> int:
        return len(self.chunks) if self.count is None else self.count

    @classmethod
    def decode(cls, count: int, body: bytes, padding: bool) -> SourceDescription:
        chunks: list[SdesChunk] = []
        off = 0
        for _ in range(count):
            if off + 4 > len(body):
                break
            ssrc = _U32.unpack_from(body, off)[0]
            off += 4
            items: list[SdesItem] = []
            while off < len(body) and body[off] != 0:
                if off + 2 > len(body) or off + 2 + body[off + 1] > len(body):
                    chunks.append(SdesChunk(ssrc, tuple(items)))
                    cut = cls(tuple(chunks), count, padding)
                    raise RtcpError(f"SDES item of type {body[off]}: the packet ends inside it",
                                    (cut,))  # fmt: skip
                items.append(SdesItem(body[off], bytes(body[off + 2 : off + 2 + body[off + 1]])))
                off += 2 + body[off + 1]
            off = (off + 4) & ~3  # past the null item, to the next 32-bit boundary
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks), None if count == len(chunks) else count, padding)

    def __bytes__(self) -> bytes:
        body = b"".join(map(bytes, self.chunks))
        return _header(SDES, self.source_count, self.padding, body)


@dataclass(frozen=True, slots=True)
class OtherPacket:
    """A packet type not decoded here (BYE, APP, RTPFB, PSFB, XR …): header fields and body."""

    packet_type: int
    count: int
    body: bytes
    padding: bool = False

    def __bytes__(self) -> bytes:
        return _header(self.packet_type, self.count, self.padding, self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | OtherPacket

_DECODERS: dict[int, Callable[[int, bytes, bool], RtcpPacket]] = {
    SR: SenderReport.decode,
    RR: ReceiverReport.decode,
    SDES: SourceDescription.decode,
}


def parse_compound(data: bytes) -> tuple[RtcpPacket, ...]:
    """Every packet of an RTCP compound packet; RtcpError (with `.parsed`) at the first defect."""
    packets: list[RtcpPacket] = []
    off = 0
    while off < len(data):
        try:
            if off + 4 > len(data):
                raise RtcpError(f"{len(data) - off} bytes left at offset {off}: a header needs 4")
            first, ptype, words = _HDR.unpack_from(data, off)
            if first >> 6 != 2:
                raise RtcpError(f"version {first >> 6} at offset {off}: expected 2")
            end = off + 4 * (words + 1)
            if end > len(data):
                raise RtcpError(f"type {ptype} at offset {off}: length {words} words runs "
                                f"{end - len(data)} bytes past the datagram")  # fmt: skip
            count, padding, body = first & 0x1F, bool(first & 0x20), bytes(data[off + 4 : end])
            decode = _DECODERS.get(ptype)
            packets.append(decode(count, body, padding) if decode
                           else OtherPacket(ptype, count, body, padding))  # fmt: skip
        except RtcpError as exc:
            raise RtcpError(str(exc), tuple(packets) + exc.parsed) from None
        off = end
    return tuple(packets)


def parse_leading(data: bytes) -> tuple[RtcpPacket, ...]:
    """The packets of `data` up to its first defect (all of them when there is none)."""
    try:
        return parse_compound(data)
    except RtcpError as exc:
        return exc.parsed
