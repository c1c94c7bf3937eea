"""FFmpeg (PyAV) decoders, encoders and resamplers over plain bytes: payload → 16-bit PCM →
payload. The only module of the package that imports PyAV.

PCM here is always signed 16-bit little-endian, mono unless said otherwise, at a rate the
caller names. FFmpeg does the codec and resampling work (libavcodec, libswresample); Python
only moves bytes between them.

What PyAV does not give us: Opus in-band FEC and packet loss concealment. libopus can decode
the FEC copy of a lost frame from the next packet (`opus_decode(..., decode_fec=1)`) and
conceal a loss (`opus_decode(NULL, ...)`), but FFmpeg's libopus and native Opus decoders
expose neither (an empty packet means "drain"), so a lost frame becomes silence
(relay.transcode.chain), as it does for every other codec.
"""

from __future__ import annotations

from fractions import Fraction
from typing import cast

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.resampler import AudioResampler

from relay.transcode.codecs import AudioCodec, opus_channels, opus_options, opus_ptime

__all__ = ["AudioError", "Decoder", "Encoder", "Resampler", "frame_samples"]


class AudioError(ValueError):
    """A payload FFmpeg could not decode, or an encoder that could not be set up."""


_LAYOUTS = {1: "mono", 2: "stereo"}


def _frame(pcm: bytes, rate: int, channels: int = 1) -> av.AudioFrame:
    samples = len(pcm) // 2 // channels
    frame = av.AudioFrame(format="s16", layout=_LAYOUTS[channels], samples=samples)
    frame.planes[0].update(pcm)
    frame.sample_rate = rate
    return frame


def _pcm(frames: list[av.AudioFrame]) -> bytes:
    # a packed s16 frame's plane may be padded beyond its samples: cut at the real length
    return b"".join(bytes(f.planes[0])[: f.samples * 2 * len(f.layout.channels)] for f in frames)


class Resampler:
    """Any decoded frame → mono s16 PCM at `rate` (libswresample)."""

    __slots__ = ("rate", "_swr")

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._swr = AudioResampler(format="s16", layout="mono", rate=rate)

    def frames(self, frames: list[av.AudioFrame]) -> bytes:
        out = []
        for f in frames:
            f.pts = None  # our time line is the RTP one; swresample needs no pts
            out += self._swr.resample(f)
        return _pcm(out)

    def pcm(self, pcm: bytes, rate: int) -> bytes:
        """Mono s16 PCM at `rate` → mono s16 PCM at this resampler's rate."""
        if rate == self.rate or not pcm:
            return pcm
        return self.frames([_frame(pcm, rate)])


class Decoder:
    """One payload type's decoder: RTP payload → mono PCM at `out_rate`."""

    __slots__ = ("codec", "_ctx", "_resampler", "_out_rate")

    def __init__(self, codec: AudioCodec, out_rate: int) -> None:
        self.codec = codec
        try:
            ctx = cast(AudioCodecContext, av.CodecContext.create(codec.decoder, "r"))
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError(f"no FFmpeg decoder {codec.decoder}: {exc}") from None
        ctx.sample_rate = codec.sample_rate
        ctx.layout = "mono"  # Opus decodes either way; telephony legs want mono
        self._ctx = ctx
        self._out_rate = out_rate
        self._resampler = AudioResampler(format="s16", layout="mono", rate=out_rate)

    def decode(self, payload: bytes) -> tuple[bytes, int]:
        """(the payload's audio as mono s16 at `out_rate`, how many samples it held at the
        codec's own rate); AudioError when FFmpeg rejects it."""
        if not payload:
            raise AudioError("empty payload")
        try:
            frames = self._ctx.decode(av.Packet(payload))
            native = 0
            out = []
            for f in frames:
                native += f.samples
                if f.sample_rate == self._out_rate and f.format.name == "s16" \
                        and len(f.layout.channels) == 1:
                    out.append(f)  # already what we want: no swresample round
                    continue
                f.pts = None
                out += self._resampler.resample(f)
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError(f"{self.codec.name}: {exc}") from None
        return _pcm(out), native


def frame_samples(codec: AudioCodec, ptime: int) -> int:
    """Samples (at the codec's rate) of one RTP packet of `ptime` ms."""
    if codec.name == "opus":
        ptime = opus_ptime(ptime)
    elif codec.frame_ms:
        ptime = max(codec.frame_ms, ptime - ptime % codec.frame_ms)
    return codec.sample_rate * ptime // 1000


class Encoder:
    """Mono s16 PCM at the codec's sample rate → one RTP payload per `frame` samples.

    `encode(pcm)` takes exactly `frame` samples (`len(pcm) == 2 * frame`) and returns the
    payload of one RTP packet of `ptime` ms, whose timestamp advances by `ticks` (RTP clock
    units; G.722: half the samples). This is what media playback (play media, play DTMF)
    uses to make RTP-ready frames."""

    __slots__ = ("codec", "ptime", "frame", "ticks", "channels", "bitrate", "_ctx", "_up", "_pts")

    def __init__(self, codec: AudioCodec, ptime: int = 20, fmtp: str = "") -> None:
        if codec.encoder is None:
            raise AudioError(f"FFmpeg has no {codec.name} encoder")
        self.codec = codec
        self.frame = frame_samples(codec, ptime)
        self.ptime = self.frame * 1000 // codec.sample_rate
        self.ticks = int(self.frame * codec.ticks_per_sample)
        self.channels = opus_channels(fmtp) if codec.name == "opus" else 1
        ctx = cast(AudioCodecContext, av.CodecContext.create(codec.encoder, "w"))
        ctx.sample_rate = codec.sample_rate
        ctx.layout = _LAYOUTS[self.channels]
        ctx.format = "s16"
        self.bitrate = 0
        if codec.name == "opus":
            self.bitrate, options = opus_options(fmtp, ptime)
            ctx.bit_rate = self.bitrate
            ctx.options = options
        elif codec.name == "g722":
            ctx.options = {"frame_size": str(self.frame)}
        try:
            ctx.open()
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError(f"cannot open the {codec.encoder} encoder: {exc}") from None
        self._ctx = ctx
        self._up = (AudioResampler(format="s16", layout="stereo", rate=codec.sample_rate)
                    if self.channels == 2 else None)  # fmt: skip
        self._pts = 0

    def encode(self, pcm: bytes) -> bytes:
        """One packet's payload from `frame` mono samples; AudioError if FFmpeg fails."""
        frame = _frame(pcm, self.codec.sample_rate)
        if self._up is not None:
            up = self._up.resample(frame)
            frame = _frame(_pcm(up), self.codec.sample_rate, 2)
        frame.pts = self._pts
        frame.time_base = Fraction(1, self.codec.sample_rate)
        self._pts += frame.samples
        try:
            return b"".join(bytes(p) for p in self._ctx.encode(frame))
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError(f"{self.codec.encoder}: {exc}") from None
