"""Driving relay.transcode chains in tests: plans for one codec to another, a tone sent as
RTP at a given codec, and the audio that comes out decoded back to PCM (through FFmpeg)."""

from __future__ import annotations

from collections.abc import Iterable

from relay.transcode import packet
from relay.transcode.audio import Decoder, Encoder
from relay.transcode.chain import Chain
from relay.transcode.codecs import lookup
from relay.transcode.plan import Codec, DirectionPlan
from tests.support.tone import pcm_tone

PCMU = Codec("PCMU", 8000)
PCMA = Codec("PCMA", 8000)
G722 = Codec("G722", 8000)
OPUS = Codec("opus", 48000, 2, "minptime=10;useinbandfec=1")
G723 = Codec("G723", 8000)
TE8 = Codec("telephone-event", 8000, fmtp="0-16")
TE48 = Codec("telephone-event", 48000, fmtp="0-16")
PT = {"PCMU": 0, "PCMA": 8, "G722": 9, "opus": 96, "G723": 4}


def plan(src: Codec, dst: Codec, ptime: int | None = None, **kw: object) -> DirectionPlan:
    """A plan that transcodes `src` (at its usual payload type) into `dst`."""
    return DirectionPlan(inputs={PT[src.name]: src, **kw.pop("inputs", {})},  # type: ignore[dict-item]
                         outputs={PT[dst.name]: dst, **kw.pop("outputs", {})},  # type: ignore[dict-item]
                         encode_pt=PT[dst.name], ptime=ptime, **kw)  # type: ignore[arg-type]


def tone_packets(codec: Codec, hz: float, seconds: float, ssrc: int = 0x1234,
                 ptime: int = 20, amplitude: int = 8000) -> list[bytes]:  # fmt: skip
    """A tone encoded by FFmpeg as RTP packets of `codec` at its payload type."""
    av_codec = lookup(codec.name, codec.clock)
    assert av_codec is not None
    enc = Encoder(av_codec, ptime, codec.fmtp)
    out = []
    for i in range(int(seconds * 1000) // enc.ptime):
        pcm = pcm_tone(hz, i * enc.frame, enc.frame, av_codec.sample_rate, amplitude)
        out.append(packet.build(i == 0, PT[codec.name], i, 1000 + i * enc.ticks, ssrc,
                                enc.encode(pcm)))  # fmt: skip
    return out


def run(chain: Chain, packets: Iterable[bytes], start: float = 0.0) -> list[bytes]:
    """Feed packets 20 ms apart; every packet the chain sends."""
    out = []
    for i, p in enumerate(packets):
        out += chain.feed(p, start + i * 0.02)
    return out


def decode(codec: Codec, packets: Iterable[bytes], rate: int = 8000) -> bytes:
    """The packets' payloads decoded in order (mono s16 at `rate`)."""
    av_codec = lookup(codec.name, codec.clock)
    assert av_codec is not None
    dec = Decoder(av_codec, rate)
    pcm = b""
    for p in packets:
        rtp = packet.parse(p)
        assert rtp is not None
        pcm += dec.decode(rtp.payload)[0]
    return pcm
