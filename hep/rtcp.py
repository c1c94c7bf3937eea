"""An RTCP compound packet → rtpengine 10.5's HEP JSON text (docs/spec/hep.md §2.5), pure.

rtpengine builds this JSON by string formatting, spaces included (`"{ "`, `" }"`, `, "packets"`,
`"sdes_information": [ ... ]`), and Homer shows it as is, so it is reproduced byte for byte here
rather than produced by a JSON library. SR, RR and SDES are exported; BYE, APP, XR and feedback
packets are not (as in 10.5). Parsing stops at the first malformed sub-packet and what was parsed
before is kept; `None` means nothing exportable (rtpengine then sends no HEP packet).
"""

from __future__ import annotations

import struct

__all__ = ["rtcp_json", "is_rtcp"]

_HDR = struct.Struct("!BBH")
_SR = struct.Struct("!IIIIII")  # ssrc, ntp msw, ntp lsw, rtp ts, packets, octets
_RB = struct.Struct("!IIIIII")  # ssrc, fraction+lost, highest seq, jitter, lsr, dlsr
_SSRC = struct.Struct("!I")


def is_rtcp(packet: bytes) -> bool:
    """RTP/RTCP demultiplexing on a muxed port (RFC 5761): RTCP types 200-204 (SR..APP)."""
    return len(packet) >= 8 and packet[0] >> 6 == 2 and 200 <= packet[1] <= 204


def _escape(raw: bytes) -> str:
    out = []
    for b in raw:
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif b < 0x20 or b > 0x7E:
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _blocks(data: bytes, off: int, count: int, end: int) -> str | None:
    items = []
    for _ in range(count):
        if off + 24 > end:
            return None
        ssrc, lost_word, highest, jitter, lsr, dlsr = _RB.unpack_from(data, off)
        fraction, lost = lost_word >> 24, lost_word & 0xFFFFFF
        items.append(f'{{"source_ssrc":{ssrc},"highest_seq_no":{highest},'
                     f'"fraction_lost":{fraction},"ia_jitter":{jitter},'
                     f'"packets_lost":{lost},"lsr":{lsr},"dlsr":{dlsr}}}')  # fmt: skip
        off += 24
    return "[" + ",".join(items) + "]"


def _sdes(data: bytes, off: int, count: int, end: int) -> list[str]:
    items: list[str] = []
    for _ in range(count):
        if off + 4 > end:
            break
        ssrc = _SSRC.unpack_from(data, off)[0]
        off += 4
        while off < end:
            itype = data[off]
            if itype == 0:  # end of this chunk: skip to the next 32-bit boundary
                off = (off + 4) & ~3
                break
            if off + 2 > end:
                return items
            length = data[off + 1]
            text = data[off + 2 : off + 2 + length]
            if len(text) < length:
                return items
            items.append(f'{{"sdes_chunk_ssrc":{ssrc},"type":{itype},"text":"{_escape(text)}"}}')
            off += 2 + length
    return items


def rtcp_json(packet: bytes) -> str | None:
    parts: list[str] = []
    off = 0
    n = len(packet)
    while off + 4 <= n:
        first, ptype, words = _HDR.unpack_from(packet, off)
        if first >> 6 != 2:
            break
        end = off + 4 * (words + 1)
        if end > n:
            break
        count = first & 0x1F
        if ptype == 200 and end - off >= 28:
            ssrc, msw, lsw, rtp_ts, pkts, octets = _SR.unpack_from(packet, off + 4)
            blocks = _blocks(packet, off + 28, count, end)
            if blocks is None:
                break
            parts.append(f'"sender_information":{{"ntp_timestamp_sec":{msw},'
                         f'"ntp_timestamp_usec":{lsw},"octets":{octets},"rtp_timestamp":{rtp_ts},'
                         f' "packets":{pkts}}},"ssrc":{ssrc},"type":200,"report_count":{count},'
                         f'"report_blocks":{blocks}')  # fmt: skip
        elif ptype == 201 and end - off >= 8:
            ssrc = _SSRC.unpack_from(packet, off + 4)[0]
            blocks = _blocks(packet, off + 8, count, end)
            if blocks is None:
                break
            parts.append(f'"ssrc":{ssrc},"type":201,"report_count":{count},"report_blocks":{blocks}')
        elif ptype == 202:
            items = _sdes(packet, off + 4, count, end)
            parts.append(f'"sdes_report_count":{count},"sdes_information": [ {",".join(items)}]')
        off = end
    if not parts:
        return None
    return "{ " + ",".join(parts) + " }"
