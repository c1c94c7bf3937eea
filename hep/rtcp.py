"""An RTCP compound packet → rtpengine 10.5's HEP JSON text (docs/spec/hep.md §2.5), pure.

rtpengine builds this JSON by string formatting, spaces included (`"{ "`, `" }"`, `, "packets"`,
`"sdes_information": [ ... ]`), and Homer shows it as is, so it is reproduced byte for byte here
rather than produced by a JSON library. The packet is parsed by `rtp.rtcp`; SR, RR and SDES are
exported, BYE, APP, XR and feedback packets are not (as in 10.5). What was parsed before the
first defect is exported (an SDES cut short gives the items before the cut); `None` means
nothing exportable (rtpengine then sends no HEP packet).
"""

from __future__ import annotations

from rtp.rtcp import (
    ReceiverReport,
    ReportBlock,
    SenderReport,
    SourceDescription,
    parse_leading,
)

__all__ = ["rtcp_json"]

_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r",
            9: "\\t"}  # fmt: skip


def _escape(raw: bytes) -> str:
    """rtpengine's escaping: quote, backslash and the C escapes \\b \\f \\n \\r \\t;
    other bytes outside 0x20..0x7e become `_`."""
    return "".join(_ESCAPES.get(b) or (chr(b) if 0x20 <= b <= 0x7E else "_") for b in raw)


def _blocks(blocks: tuple[ReportBlock, ...]) -> str:
    items = [f'{{"source_ssrc":{b.ssrc},"highest_seq_no":{b.highest_seq},'
             f'"fraction_lost":{b.fraction_lost},"ia_jitter":{b.jitter},'
             f'"packets_lost":{b.packets_lost},"lsr":{b.lsr},"dlsr":{b.dlsr}}}'
             for b in blocks]  # fmt: skip
    return "[" + ",".join(items) + "]"


def _sr(p: SenderReport) -> str:
    return (f'"sender_information":{{"ntp_timestamp_sec":{p.ntp_msw},'
            f'"ntp_timestamp_usec":{p.ntp_lsw},"octets":{p.octets},'
            f'"rtp_timestamp":{p.rtp_timestamp}, "packets":{p.packets}}},"ssrc":{p.ssrc},'
            f'"type":200,"report_count":{len(p.blocks)},"report_blocks":{_blocks(p.blocks)}')


def _rr(p: ReceiverReport) -> str:
    return (f'"ssrc":{p.ssrc},"type":201,"report_count":{len(p.blocks)},'
            f'"report_blocks":{_blocks(p.blocks)}')


def _sdes(p: SourceDescription) -> str:
    items = [f'{{"sdes_chunk_ssrc":{c.ssrc},"type":{i.type},"text":"{_escape(i.text)}"}}'
             for c in p.chunks for i in c.items]  # fmt: skip
    return f'"sdes_report_count":{p.source_count},"sdes_information": [ {",".join(items)}]'


def rtcp_json(packet: bytes) -> str | None:
    """rtpengine's JSON for one received RTCP compound packet, or None if nothing is exported."""
    parts: list[str] = []
    for p in parse_leading(packet):
        if isinstance(p, SenderReport):
            parts.append(_sr(p))
        elif isinstance(p, ReceiverReport):
            parts.append(_rr(p))
        elif isinstance(p, SourceDescription):
            parts.append(_sdes(p))
    if not parts:
        return None
    return "{ " + ",".join(parts) + " }"
