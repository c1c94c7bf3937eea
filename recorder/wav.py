"""A recording (pcap or pcapng bytes) → a stereo 8 kHz 16-bit WAV, one channel per party.

Pure: bytes and the recording's sidecar (docs/recording-sidecar.md) in, WAV bytes out.

* Packets are read with dpkt (classic pcap, Ethernet or raw IP link; pcapng). Frames that are
  not IPv4/IPv6 + UDP (pcapng SDP and note packets) and RTCP are skipped.
* Channel: the party of the stream's SSRC (or of its source address) in the sidecar; the first
  party (the offerer) is the left channel, every other party the right. Without a sidecar the
  first source address seen is left and the others right.
* Time: both channels share one time line starting at the first RTP packet. Within a stream a
  packet's place comes from its RTP timestamp (so network jitter does not smear audio); the
  stream is re-anchored on the capture time when the two disagree by more than
  REANCHOR_SECONDS (new talk spurt after a pause, timestamp reset). What nobody sent (loss,
  silence suppression, pauses, a party that joins late) stays silence.
* Codecs: PCMU and PCMA are decoded by recorder.g711's tables; G.722, Opus, G.729, GSM and
  G.723.1 through FFmpeg (recorder.avdecode, one decoder per stream and payload type), their
  RTP clock (G.722: 8000, Opus: 48000) scaled to the WAV's 8 kHz; a payload FFmpeg rejects is
  silence. Comfort noise and telephone-event packets are silence; any other codec raises
  WavExportError naming it.
"""

from __future__ import annotations

import array
import io
import ipaddress
import struct
import sys
import wave
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dpkt

from recorder.avdecode import PayloadDecoder
from recorder.g711 import DECODERS
from rtp.codecs import CODECS, lookup
from rtp.demux import RTCP_CONFLICT_PTS
from rtp.payload_types import STATIC_PAYLOAD_TYPES

__all__ = ["WavExportError", "RtpPacket", "read_rtp", "export_wav", "RATE", "REANCHOR_SECONDS"]

RATE = 8000
REANCHOR_SECONDS = 1.0
STATIC_PT = {pt: (name.upper(), clock) for pt, (name, clock) in STATIC_PAYLOAD_TYPES.items()}
DEFAULT_CLOCK = {"OPUS": 48000}
"""Clock of a dynamic codec the sidecar names without a rate (else 8000)."""
SUPPORTED = sorted(set(DECODERS) | {c.name.upper() for c in CODECS.values()})
SILENT_CODECS = frozenset({"CN", "TELEPHONE-EVENT"})
_PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


class WavExportError(ValueError):
    """The recording cannot be turned into a WAV; the message says why and what is supported."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet as captured: capture time, source "ip:port", header fields, payload."""

    when: float
    src: str
    ssrc: int
    pt: int
    seq: int
    ts: int
    payload: bytes


def _frames(data: bytes) -> Iterator[tuple[float, bytes, int]]:
    """(capture time, frame, link type) of every packet record; dpkt does the file format."""
    magic = data[:4]
    try:
        if magic in _PCAP_MAGICS:
            reader: Any = dpkt.pcap.Reader(io.BytesIO(data))
        elif magic == _PCAPNG_MAGIC:
            reader = dpkt.pcapng.Reader(io.BytesIO(data))
        else:
            raise WavExportError("not a pcap or pcapng file (unknown magic number)")
        link = int(reader.datalink())
        for when, frame in reader:
            yield float(when), bytes(frame), link
    except (dpkt.dpkt.UnpackError, ValueError, struct.error) as exc:
        if isinstance(exc, WavExportError):
            raise
        raise WavExportError(f"unreadable capture file: {exc}") from None


def _udp(frame: bytes, link: int) -> tuple[str, bytes] | None:
    """(source "ip:port", UDP payload) of an Ethernet or raw-IP frame; None if not IP/UDP."""
    try:
        if link == dpkt.pcap.DLT_EN10MB:
            ip: Any = dpkt.ethernet.Ethernet(frame).data
        elif frame[:1] and frame[0] >> 4 == 6:
            ip = dpkt.ip6.IP6(frame)
        else:
            ip = dpkt.ip.IP(frame)
    except (dpkt.dpkt.UnpackError, struct.error, IndexError):
        return None
    if isinstance(ip, dpkt.ip.IP):
        host = ".".join(str(b) for b in ip.src)
    elif isinstance(ip, dpkt.ip6.IP6):
        host = str(ipaddress.IPv6Address(ip.src))
    else:
        return None
    udp = ip.data
    if not isinstance(udp, dpkt.udp.UDP):
        return None
    return f"{host}:{udp.sport}", bytes(udp.data)


def read_rtp(data: bytes) -> Iterator[RtpPacket]:
    """Every RTP packet (version 2, not RTCP) of a pcap/pcapng file, in file order."""
    for when, frame, link in _frames(data):
        got = _udp(frame, link)
        if got is None:
            continue
        src, p = got
        if len(p) < 12 or p[0] >> 6 != 2 or p[1] & 0x7F in RTCP_CONFLICT_PTS:  # RTCP 192..223
            continue
        csrc, ext = p[0] & 0x0F, p[0] & 0x10
        start = 12 + 4 * csrc
        if ext:
            if len(p) < start + 4:
                continue
            start += 4 + 4 * int.from_bytes(p[start + 2 : start + 4], "big")
        end = len(p)
        if p[0] & 0x20 and end > start:  # padding: the last byte counts it
            end -= p[-1]
        if end < start:
            continue
        yield RtpPacket(
            when, src, int.from_bytes(p[8:12], "big"), p[1] & 0x7F,
            int.from_bytes(p[2:4], "big"), int.from_bytes(p[4:8], "big"), p[start:end],
        )  # fmt: skip


def _codec_names(sidecar: Mapping[str, Any] | None) -> dict[int, tuple[str, int]]:
    """Payload type → (encoding name in upper case, RTP clock)."""
    names = dict(STATIC_PT)
    for party in (sidecar or {}).get("parties") or []:
        for media in party.get("media") or []:
            for codec in media.get("codecs") or []:
                if isinstance(codec.get("pt"), int) and codec.get("name"):
                    name = str(codec["name"]).upper()
                    rate = codec.get("rate")
                    clock = rate if isinstance(rate, int) and rate > 0 else \
                        DEFAULT_CLOCK.get(name, 8000)
                    names[codec["pt"]] = (name, clock)
    return names


class _Decoders:
    """Payload → 8 kHz PCM per (channel, SSRC, payload type): G.711 by table, others FFmpeg."""

    def __init__(self) -> None:
        self.streams: dict[tuple[int, int, int], PayloadDecoder] = {}

    def decode(self, name: str, clock: int, key: tuple[int, int, int], payload: bytes) -> bytes:
        g711 = DECODERS.get(name)
        if g711 is not None:
            pcm = g711(payload)
            if sys.byteorder == "big":
                pcm = _swapped(pcm)
            return pcm
        dec = self.streams.get(key)
        if dec is None:
            codec = lookup(name, clock)
            if codec is None:
                raise WavExportError(
                    f"codec {name} (payload type {key[2]}) is not supported for WAV export yet; "
                    f"supported: {', '.join(SUPPORTED)}"
                )
            dec = self.streams[key] = PayloadDecoder(codec, RATE)
        return dec.decode(payload) or b""


def _swapped(pcm: bytes) -> bytes:
    a = array.array("h")
    a.frombytes(pcm)
    a.byteswap()
    return a.tobytes()


class _Channels:
    """Which channel (0 left, 1 right) a stream belongs to."""

    def __init__(self, sidecar: Mapping[str, Any] | None) -> None:
        parties = [p.get("tag") for p in (sidecar or {}).get("parties") or []]
        first = parties[0] if parties else None
        self.by_ssrc: dict[int, int] = {}
        self.by_src: dict[str, int] = {}
        for s in (sidecar or {}).get("streams") or []:
            if s.get("kind", "rtp") != "rtp" or s.get("party") is None:
                continue
            channel = 0 if s["party"] == first else 1
            if isinstance(s.get("ssrc"), int):
                self.by_ssrc[s["ssrc"]] = channel
            if s.get("src"):
                self.by_src[str(s["src"])] = channel

    def of(self, pkt: RtpPacket) -> int:
        if pkt.ssrc in self.by_ssrc:
            return self.by_ssrc[pkt.ssrc]
        if pkt.src not in self.by_src:  # unknown to the sidecar: first source seen is left
            self.by_src[pkt.src] = 0 if not self.by_src else 1
        return self.by_src[pkt.src]


@dataclass
class _Anchor:
    pos: int  # sample index on the common time line
    ts: int  # RTP timestamp at pos


def _place(
    pkts: list[RtpPacket], names: dict[int, tuple[str, int]], chans: _Channels
) -> list[array.array[int]]:
    t0 = min(p.when for p in pkts)
    out: list[array.array[int]] = [array.array("h"), array.array("h")]
    anchors: dict[tuple[int, int], _Anchor] = {}
    decoders = _Decoders()
    for p in pkts:
        name, clock = names.get(p.pt, (f"payload type {p.pt}", 8000))
        if name in SILENT_CODECS:
            continue
        channel = chans.of(p)
        pcm = decoders.decode(name, clock, (channel, p.ssrc, p.pt), p.payload)
        captured = round((p.when - t0) * RATE)
        a = anchors.get((channel, p.ssrc))
        ticks = (p.ts - a.ts + 2**31) % 2**32 - 2**31 if a else 0
        delta = ticks * RATE // clock
        if a is None or abs(a.pos + delta - captured) > REANCHOR_SECONDS * RATE:
            a = anchors[(channel, p.ssrc)] = _Anchor(captured, p.ts)
            delta = 0
        pos = max(a.pos + delta, 0)
        samples = array.array("h")
        samples.frombytes(pcm)
        buf = out[channel]
        if len(buf) < pos + len(samples):
            buf.extend(array.array("h", bytes(2 * (pos + len(samples) - len(buf)))))
        buf[pos : pos + len(samples)] = samples
    return out


def export_wav(data: bytes, sidecar: Mapping[str, Any] | None = None) -> bytes:
    """The recording in `data` as a stereo WAV (left: first party, right: the other)."""
    pkts = list(read_rtp(data))
    if not pkts:
        raise WavExportError("the recording holds no RTP packets")
    left, right = _place(pkts, _codec_names(sidecar), _Channels(sidecar))
    n = max(len(left), len(right))
    for ch in (left, right):
        ch.extend(array.array("h", bytes(2 * (n - len(ch)))))
    frames = array.array("h", bytes(4 * n))
    frames[0::2] = left
    frames[1::2] = right
    if sys.byteorder == "big":
        frames.byteswap()
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(frames.tobytes())
    return out.getvalue()
