"""RTCP from a party on a transcoded leg, rewritten for the other leg (pure; RFC 3550 §6.4),
as rtpengine 10.5 rewrites it (docs/spec/transcoding.md §2, measured):

* SR and RR: the sender SSRC becomes the SSRC its media leaves with on the other leg;
* an SR's RTP timestamp, packet and octet counts become those of the transcoded output (whole
  RTP packets, last timestamp sent) once something was sent; the NTP time stays;
* each report block about an SSRC we send to the party (the other direction's output) is
  about the original source instead, with the cumulative loss, fraction lost and extended
  highest sequence number of what we received from that source; jitter, LSR and DLSR stay;
* every other packet of the compound (SDES, BYE, APP, XR) stays as it is, SSRCs included.

A packet too short for what its header claims ends the walk; what was rewritten before stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rtp.reports import ReceiveStats, SendStats

__all__ = ["Translation", "translate"]

_SR, _RR = 200, 201


@dataclass(frozen=True, slots=True)
class Translation:
    """What one direction knows: its input SSRC → output SSRC and output counts; the other
    direction's input SSRC → output SSRC (towards this party) and its reception statistics."""

    out_of: Mapping[int, int]
    sent: Mapping[int, SendStats]
    back: Mapping[int, int]
    back_received: Mapping[int, ReceiveStats]


def _u32(b: bytearray, at: int) -> int:
    return int.from_bytes(b[at : at + 4], "big")


def _put(b: bytearray, at: int, value: int) -> None:
    b[at : at + 4] = (value & 0xFFFFFFFF).to_bytes(4, "big")


def translate(packet: bytes, t: Translation) -> bytes:
    """`packet` (plaintext compound RTCP) with the rewrites above; the same object when there
    was nothing to rewrite."""
    b = bytearray(packet)
    changed = False
    reverse = {out: src for src, out in t.back.items()}
    at = 0
    while at + 8 <= len(b):
        if b[at] >> 6 != 2:
            break
        count, kind = b[at] & 0x1F, b[at + 1]
        end = at + 4 * (int.from_bytes(b[at + 2 : at + 4], "big") + 1)
        if end > len(b):
            break
        if kind in (_SR, _RR):
            ssrc = _u32(b, at + 4)
            out = t.out_of.get(ssrc)
            if out is not None:
                _put(b, at + 4, out)
                changed = True
                sent = t.sent.get(out)
                if kind == _SR and sent is not None and sent.packets and at + 28 <= end:
                    _put(b, at + 16, sent.timestamp)
                    _put(b, at + 20, sent.packets)
                    _put(b, at + 24, sent.octets)
            blocks = at + (28 if kind == _SR else 8)
            for i in range(count):
                rb = blocks + 24 * i
                if rb + 24 > end:
                    break
                source = reverse.get(_u32(b, rb))
                if source is None:
                    continue
                _put(b, rb, source)
                changed = True
                st = t.back_received.get(source)
                if st is None or not st.received:
                    continue
                lost = min(st.lost, 0x7FFFFF)
                fraction = min(lost * 256 // (st.received + lost), 255)
                b[rb + 4] = fraction
                b[rb + 5 : rb + 8] = lost.to_bytes(3, "big")
                _put(b, rb + 8, st.extended_max)
        at = end
    return bytes(b) if changed else packet
