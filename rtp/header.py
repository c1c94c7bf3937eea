"""The RTP fixed header (RFC 3550 §5.1): `RtpHeader.parse` / `bytes()`, and fast field reads.

The per-packet paths (relay forwarding, recorder statistics) do not build an `RtpHeader`: they
read the one field they need with `read_u32` / `read_u16` (bound `struct.unpack_from`s) at the
offsets below, which costs one C call.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "RtpError",
    "RtpHeader",
    "VERSION",
    "FIXED_SIZE",
    "SEQ_OFFSET",
    "TIMESTAMP_OFFSET",
    "SSRC_OFFSET",
    "read_u16",
    "read_u32",
]

VERSION = 2
FIXED_SIZE = 12
SEQ_OFFSET = 2
TIMESTAMP_OFFSET = 4
SSRC_OFFSET = 8

_FIXED = struct.Struct("!BBHII")
read_u16 = struct.Struct("!H").unpack_from
"""`read_u16(packet, offset)[0]`: a network-order 16-bit field, e.g. the sequence number."""
read_u32 = struct.Struct("!I").unpack_from
"""`read_u32(packet, offset)[0]`: a network-order 32-bit field, e.g. the SSRC at offset 8."""


class RtpError(ValueError):
    """Bytes that are not an RTP packet; the message names the field and what was expected."""


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """Fixed header, CSRC list and header extension of one RTP packet (RFC 3550 §5.1, §5.3.1)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False
    padding: bool = False
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    """(profile-defined 16 bits, extension data: a multiple of 4 bytes), or None."""

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type {self.payload_type}: expected 0..127")
        if len(self.csrcs) > 15:
            raise RtpError(f"{len(self.csrcs)} CSRCs: at most 15 fit the CC field")
        if self.extension is not None and len(self.extension[1]) % 4:
            raise RtpError("header extension length: expected a multiple of 4 bytes")

    @property
    def size(self) -> int:
        """Header length in bytes: where the payload starts."""
        ext = 0 if self.extension is None else 4 + len(self.extension[1])
        return FIXED_SIZE + 4 * len(self.csrcs) + ext

    @classmethod
    def parse(cls, packet: bytes) -> RtpHeader:
        """The header at the start of `packet`; RtpError if it is not RTP version 2."""
        if len(packet) < FIXED_SIZE:
            raise RtpError(f"packet of {len(packet)} bytes: an RTP header needs {FIXED_SIZE}")
        b0, b1, seq, ts, ssrc = _FIXED.unpack_from(packet)
        if b0 >> 6 != VERSION:
            raise RtpError(f"version {b0 >> 6}: expected {VERSION}")
        off = FIXED_SIZE + 4 * (b0 & 0x0F)
        if len(packet) < off:
            raise RtpError(f"CSRC count {b0 & 0x0F}: the packet ends inside the CSRC list")
        csrcs = struct.unpack_from(f"!{b0 & 0x0F}I", packet, FIXED_SIZE)
        extension = None
        if b0 & 0x10:
            if len(packet) < off + 4:
                raise RtpError("extension bit set: the packet ends inside the extension header")
            profile, words = struct.unpack_from("!HH", packet, off)
            data = bytes(packet[off + 4 : off + 4 + 4 * words])
            if len(data) < 4 * words:
                raise RtpError(f"extension of {words} words: the packet ends inside it")
            extension = (profile, data)
        return cls(b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), bool(b0 & 0x20), csrcs, extension)

    def __bytes__(self) -> bytes:
        b0 = VERSION << 6 | self.padding << 5 | (self.extension is not None) << 4
        b0 |= len(self.csrcs)
        b1 = self.marker << 7 | self.payload_type
        out = _FIXED.pack(b0, b1, self.sequence, self.timestamp, self.ssrc)
        out += b"".join(struct.pack("!I", c) for c in self.csrcs)
        if self.extension is not None:
            profile, data = self.extension
            out += struct.pack("!HH", profile, len(data) // 4) + data
        return out
