"""G.711 µ-law and A-law ↔ 16-bit PCM for the chain, byte for byte what FFmpeg's `pcm_mulaw` and
`pcm_alaw` codecs produce, without a PyAV frame per packet.

Hand-written on purpose, though FFmpeg has both codecs: through PyAV every packet costs a
Packet or AudioFrame object, a codec round and a plane copy (measured, one 20-ms packet, PyAV
18 / Python 3.11 on the bench machine: decode 5.6 µs, encode 8.8 µs, against 1 µs and 5 µs
here), and a PCMU ↔ PCMA call pays both. The tables are FFmpeg's own, not a second reading of
the standard: made once, at first use, by running the 256 codes through FFmpeg's decoder and
all 65536 sample values through its encoder (FFmpeg rounds at the decision levels slightly
differently from a plain G.711 encoder such as recorder.g711's), so the chain's output is what
the PyAV path gave. Per packet: decoding is two `bytes.translate` (low and high byte of each
sample) interleaved by slice assignment; encoding one table lookup per sample
(`operator.itemgetter` over the samples as unsigned 16-bit: 5 µs a packet against 8–11 µs for
`map` or a comprehension).

PCM is signed 16-bit in the machine's byte order, as FFmpeg's `s16` (little-endian here).
"""

from __future__ import annotations

import array
import sys
from functools import cache
from operator import itemgetter
from typing import Literal, cast

import av
from av.audio.codeccontext import AudioCodecContext

__all__ = ["G711", "LAWS", "law"]

LAWS = {"pcmu": "pcm_mulaw", "pcma": "pcm_alaw"}
"""Codec name (rtp.codecs) → FFmpeg codec."""


class G711:
    """One law's tables (see the module docstring); `decode`/`encode` are pure."""

    __slots__ = ("name", "linear", "_lo", "_hi", "_codes")

    def __init__(self, name: str, linear: list[int], codes: bytes) -> None:
        self.name = name
        self.linear = linear
        """Code → sample value (what FFmpeg's decoder gives)."""
        pcm = [(v & 0xFFFF).to_bytes(2, sys.byteorder) for v in linear]
        self._lo = bytes(p[0] for p in pcm)
        self._hi = bytes(p[1] for p in pcm)
        self._codes = codes
        """Sample value as unsigned 16-bit → code (what FFmpeg's encoder gives), 65536 bytes."""

    def decode(self, payload: bytes) -> bytes:
        """Codes → s16 PCM, 2 bytes per code."""
        out = bytearray(2 * len(payload))
        out[0::2] = payload.translate(self._lo)
        out[1::2] = payload.translate(self._hi)
        return bytes(out)

    def encode(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """s16 PCM (an even number of bytes) → one code per sample."""
        samples = memoryview(pcm).cast("B").cast("H")
        if len(samples) < 2:  # itemgetter of one index gives an int, not a tuple
            return bytes(map(self._codes.__getitem__, samples))
        return bytes(itemgetter(*samples)(self._codes))

    def code(self, sample: int) -> int:
        """One sample value → its code."""
        return self._codes[sample & 0xFFFF]


def _ffmpeg(codec: str, mode: Literal["r", "w"]) -> AudioCodecContext:
    ctx = cast(AudioCodecContext, av.CodecContext.create(codec, mode))
    ctx.sample_rate = 8000
    ctx.layout = "mono"
    if mode == "w":
        ctx.format = "s16"
        ctx.open()
    return ctx


@cache
def law(name: str) -> G711:
    """The tables of `pcmu` or `pcma`, asked of FFmpeg once."""
    codec = LAWS[name]
    frames = _ffmpeg(codec, "r").decode(av.Packet(bytes(range(256))))
    linear = array.array("h", b"".join(bytes(f.planes[0])[: 2 * f.samples] for f in frames))
    values = array.array("H", range(65536))  # every sample as unsigned, in native order
    frame = av.AudioFrame(format="s16", layout="mono", samples=65536)
    frame.planes[0].update(values.tobytes())
    frame.sample_rate = 8000
    frame.pts = 0
    enc = _ffmpeg(codec, "w")
    codes = b"".join(bytes(p) for p in enc.encode(frame)) + b"".join(
        bytes(p) for p in enc.encode(None))  # fmt: skip
    if len(linear) != 256 or len(codes) != 65536:
        raise RuntimeError(f"FFmpeg's {codec} gave {len(linear)} samples, {len(codes)} codes")
    return G711(name, list(linear), codes)

