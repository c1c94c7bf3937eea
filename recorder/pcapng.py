"""rtpvault's pcapng recordings: blocks as bytes (pure), readable by Wireshark and tshark.

Layout of a file:
* Section Header Block with `shb_comment` (call-id, metadata at the start) and
  `shb_userappl` "rtpvault";
* Interface 0, LINKTYPE_ETHERNET, µs resolution: the media, framed exactly like the `eth` pcap
  format (recorder.pcap.frame);
* Interface 1, LINKTYPE_WIRESHARK_UPPER_PDU (252): "exported PDUs" that Wireshark dissects by
  name — each offer/answer SDP as `sdp` (so the SDP shows fully dissected, `tshark -Y sdp`;
  keys and ICE passwords redacted by rtp.redact),
  and notes (pause, resume, final metadata) as `data-text-lines`; every such packet also
  carries its text as a packet comment (`frame.comment`).

Hand-written rather than dpkt.pcapng: dpkt writes to file objects and has no writer for the
upper-PDU tags; these few blocks are simpler as struct packing, and tests read them back with
dpkt and tshark.
"""

from __future__ import annotations

import struct

from recorder.pcap import LINK_ETH, SNAPLEN, frame
from rtp.redact import redact_sdp

__all__ = [
    "section_header", "interfaces", "media_packet", "sdp_packet", "note_packet", "valid_prefix",
    "file_header",
]  # fmt: skip

SHB = 0x0A0D0D0A
IDB = 0x00000001
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
LINKTYPE_ETHERNET = 1
LINKTYPE_UPPER_PDU = 252
MEDIA_IF = 0
NOTE_IF = 1

OPT_END = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_TSRESOL = 9
EXP_PDU_TAG_DISSECTOR_NAME = 12

_EPB = struct.Struct("<IIIIIII")  # type, length, interface, ts high, ts low, caplen, origlen


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad(value)


def _options(*opts: tuple[int, bytes]) -> bytes:
    if not opts:
        return b""
    return b"".join(_option(c, v) for c, v in opts) + _option(OPT_END, b"")


def _block(kind: int, body: bytes) -> bytes:
    body = _pad(body)
    n = len(body) + 12
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n)


def section_header(comment: str) -> bytes:
    """SHB: little-endian, version 1.0, unknown section length, with comment and application."""
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
    opts = [(SHB_USERAPPL, b"rtpvault")]
    if comment:
        opts.insert(0, (OPT_COMMENT, comment.encode()))
    return _block(SHB, body + _options(*opts))


def interfaces() -> bytes:
    """The two IDBs: 0 = Ethernet media, 1 = exported PDUs (SDP and notes), both µs."""
    media = struct.pack("<HHI", LINKTYPE_ETHERNET, 0, SNAPLEN) + _options((IF_TSRESOL, b"\x06"))
    notes = struct.pack("<HHI", LINKTYPE_UPPER_PDU, 0, SNAPLEN) + _options((IF_TSRESOL, b"\x06"))
    return _block(IDB, media) + _block(IDB, notes)


def file_header(comment: str) -> bytes:
    return section_header(comment) + interfaces()


def _epb(interface: int, when: float, data: bytes, comment: str | None = None) -> bytes:
    usec = int(round(when * 1_000_000))
    opts = _options((OPT_COMMENT, comment.encode())) if comment else b""
    body_len = 20 + len(data) + (-len(data) % 4) + len(opts)
    n = body_len + 12
    return (
        _EPB.pack(EPB, n, interface, usec >> 32, usec & 0xFFFFFFFF, len(data), len(data))
        + data
        + b"\0" * (-len(data) % 4)
        + opts
        + struct.pack("<I", n)
    )


def media_packet(when: float, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    """EPB on interface 0 with the same synthesised Ethernet frame as the `eth` pcap format."""
    return _epb(MEDIA_IF, when, frame(LINK_ETH, src, dst, payload))


def _exported(dissector: str, payload: bytes) -> bytes:
    name = _pad(dissector.encode() + b"\0")
    return (
        struct.pack(">HH", EXP_PDU_TAG_DISSECTOR_NAME, len(name))
        + name
        + struct.pack(">HH", 0, 0)
        + payload
    )


def sdp_packet(when: float, sdp: str, comment: str) -> bytes:
    """An SDP as Wireshark's exported PDU (dissected as SDP) with `comment` as packet comment;
    keys and ICE passwords redacted (rtp.redact, docs/recording.md)."""
    return _epb(NOTE_IF, when, _exported("sdp", redact_sdp(sdp).encode()), comment)


def note_packet(when: float, text: str) -> bytes:
    """A text note (pause, resume, metadata) as an exported PDU and as its packet comment."""
    return _epb(NOTE_IF, when, _exported("data-text-lines", text.encode() + b"\n"), text)


def valid_prefix(data: bytes | memoryview) -> int:
    """Length of the longest prefix of a little-endian pcapng file made of whole blocks
    (0 if even the section header is incomplete)."""
    pos = 0
    end = len(data)
    while pos + 12 <= end:
        kind, n = struct.unpack_from("<II", data, pos)
        if pos == 0 and kind != SHB:
            return 0
        if n < 12 or n % 4 or pos + n > end:
            break
        if struct.unpack_from("<I", data, pos + n - 4)[0] != n:
            break
        pos += n
    return pos
