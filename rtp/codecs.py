"""Audio codecs by RTP encoding name: the FFmpeg decoder and encoder names, the rate the
codec samples at and its RTP clock (pure data; the relay's transcoding and the recorder's WAV
export both read it, each with its own PyAV code, since this leaf package imports nothing
but the standard library).

Clock versus sample rate: the RTP clock (a=rtpmap) is not always the rate the codec samples
at. G.722 samples at 16 kHz but its RTP timestamp advances 8000 per second (RFC 3551 §4.5.2);
Opus always has a 48 kHz clock (RFC 7587 §4.1) whatever it codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

__all__ = ["AudioCodec", "CODECS", "lookup"]


@dataclass(frozen=True, slots=True)
class AudioCodec:
    """One codec as FFmpeg handles it."""

    name: str
    """Encoding name, lower case (`pcmu`, `g722`, `opus`)."""
    decoder: str
    """FFmpeg decoder name."""
    encoder: str | None
    """FFmpeg encoder name; None where FFmpeg has none (G.729, GSM)."""
    sample_rate: int
    """Rate the codec samples at (G.722: 16000)."""
    clock: int
    """RTP clock rate (G.722: 8000)."""
    frame_ms: int = 0
    """Fixed codec frame length in ms (G.723.1: 30); 0 when any multiple of a sample goes."""

    @property
    def ticks_per_sample(self) -> Fraction:
        return Fraction(self.clock, self.sample_rate)


CODECS: dict[str, AudioCodec] = {
    c.name: c
    for c in (
        AudioCodec("pcmu", "pcm_mulaw", "pcm_mulaw", 8000, 8000),
        AudioCodec("pcma", "pcm_alaw", "pcm_alaw", 8000, 8000),
        AudioCodec("g722", "g722", "g722", 16000, 8000),
        AudioCodec("g723", "g723_1", "g723_1", 8000, 8000, frame_ms=30),
        AudioCodec("opus", "libopus", "libopus", 48000, 48000),
        AudioCodec("g729", "g729", None, 8000, 8000, frame_ms=10),
        AudioCodec("g729a", "g729", None, 8000, 8000, frame_ms=10),
        AudioCodec("gsm", "gsm", None, 8000, 8000, frame_ms=20),
    )
}
"""Encoding name (lower case) → codec. The RTP clock each one must have is `clock`."""


def lookup(name: str, clock: int) -> AudioCodec | None:
    """The codec for an a=rtpmap `name/clock`, None when FFmpeg cannot handle it here."""
    codec = CODECS.get(name.lower())
    return codec if codec is not None and codec.clock == clock else None
