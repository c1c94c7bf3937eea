"""Synthetic calls for the search/export tests: G.711 tones as RTP in pcap (dpkt) or pcapng."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import dpkt

from recorder import pcapng
from recorder.g711 import encode_alaw, encode_ulaw

ENCODERS = {0: encode_ulaw, 8: encode_alaw}
NAMES = {0: "PCMU", 8: "PCMA", 9: "G722", 13: "CN"}


@dataclass
class Leg:
    """One party's RTP: a tone from `start` for `seconds`, 20 ms packets, some dropped."""

    src: tuple[str, int]
    dst: tuple[str, int]
    ssrc: int
    freq: float
    start: float
    seconds: float
    pt: int = 0
    amplitude: int = 8000
    drop: set[int] = field(default_factory=set)  # packet indexes not sent (loss)
    ts0: int = 1000

    def packets(self, t0: float) -> Iterable[tuple[float, bytes]]:
        enc = ENCODERS.get(self.pt, encode_ulaw)
        for i in range(int(self.seconds * 50)):
            if i in self.drop:
                continue
            samples = [
                enc(int(self.amplitude * math.sin(2 * math.pi * self.freq * (i * 160 + n) / 8000)))
                for n in range(160)
            ]
            rtp = dpkt.rtp.RTP(
                version=2, pt=self.pt, seq=(100 + i) & 0xFFFF,
                ts=(self.ts0 + 160 * i) & 0xFFFFFFFF, ssrc=self.ssrc, data=bytes(samples),
            )  # fmt: skip
            yield t0 + self.start + i * 0.02, bytes(rtp)


def _ip_frame(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    udp = dpkt.udp.UDP(sport=src[1], dport=dst[1], data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(
        src=bytes(int(x) for x in src[0].split(".")), dst=bytes(int(x) for x in dst[0].split(".")),
        p=dpkt.ip.IP_PROTO_UDP, data=udp, ttl=64,
    )  # fmt: skip
    ip.len = 20 + len(udp)
    eth = dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
    return bytes(eth)


def _ordered(legs: list[Leg], t0: float) -> list[tuple[float, Leg, bytes]]:
    out = [(when, leg, rtp) for leg in legs for when, rtp in leg.packets(t0)]
    out.sort(key=lambda x: x[0])
    return out


def pcap_bytes(legs: list[Leg], t0: float = 1764028800.0) -> bytes:
    """A classic Ethernet pcap (written by dpkt) with the legs' packets in time order."""
    f = io.BytesIO()
    w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
    for when, leg, rtp in _ordered(legs, t0):
        w.writepkt(_ip_frame(leg.src, leg.dst, rtp), ts=when)
    return f.getvalue()


def pcapng_bytes(legs: list[Leg], t0: float = 1764028800.0) -> bytes:
    """A pcapng written by the recorder's own block writer, with an SDP and a note packet."""
    out = [pcapng.file_header("call-id: synth")]
    out.append(pcapng.sdp_packet(t0, "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\n", "offer"))
    for when, leg, rtp in _ordered(legs, t0):
        out.append(pcapng.media_packet(when, leg.src, leg.dst, rtp))
    out.append(pcapng.note_packet(t0 + 0.5, "pause"))
    return b"".join(out)


def sidecar_for(legs: list[Leg], tags: tuple[str, str] = ("from-a", "to-b")) -> dict[str, object]:
    """A minimal sidecar naming each leg's party (first leg = offerer)."""
    return {
        "version": 1,
        "parties": [{"tag": t, "media": [{"codecs": [
                        {"pt": leg.pt, "name": NAMES.get(leg.pt, "?"), "rate": 8000}]}]}
                    for t, leg in zip(tags, legs, strict=False)],
        "streams": [{"ssrc": leg.ssrc, "kind": "rtp", "party": tags[min(i, 1)],
                     "src": f"{leg.src[0]}:{leg.src[1]}"} for i, leg in enumerate(legs)],
    }  # fmt: skip
