"""RTP payloads of the codecs FFmpeg decodes (G.722, Opus, G.729, GSM, G.723.1) → 8 kHz mono
16-bit PCM for the WAV export, through PyAV (libavcodec + libswresample).

The relay has its own decoder (relay.transcode.audio) and the recorder may not import the
relay; both read the codec table from the leaf rtp.codecs. This one is simpler: no time line,
and a payload FFmpeg rejects yields None (silence in the export), counted by the caller.
"""

from __future__ import annotations

from typing import cast

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.resampler import AudioResampler

from rtp.codecs import AudioCodec

__all__ = ["PayloadDecoder"]


class PayloadDecoder:
    """One stream's decoder (decoders keep state between packets: G.722 is ADPCM)."""

    __slots__ = ("codec", "rate", "_ctx", "_swr")

    def __init__(self, codec: AudioCodec, rate: int) -> None:
        self.codec = codec
        self.rate = rate
        ctx = cast(AudioCodecContext, av.CodecContext.create(codec.decoder, "r"))
        ctx.sample_rate = codec.sample_rate
        ctx.layout = "mono"
        self._ctx = ctx
        self._swr = AudioResampler(format="s16", layout="mono", rate=rate)

    def decode(self, payload: bytes) -> bytes | None:
        """Little-endian s16 mono PCM at `rate`, or None when FFmpeg cannot decode it."""
        if not payload:
            return None
        try:
            out = []
            for frame in self._ctx.decode(av.Packet(payload)):
                frame.pts = None
                out += self._swr.resample(frame)
        except (av.FFmpegError, ValueError):
            return None
        return b"".join(bytes(f.planes[0])[: 2 * f.samples] for f in out)
