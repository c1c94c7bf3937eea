"""FFmpeg (PyAV) decoders, encoders and resamplers over plain bytes: payload → 16-bit PCM →
payload. The module of the package that does codec work through PyAV (relay.transcode.g711 asks
FFmpeg for its G.711 tables once; relay.transcode.fileplay opens media files with PyAV's
container API). G.711 goes through relay.transcode.g711's tables, the rest through FFmpeg
per packet.

PCM here is always signed 16-bit little-endian, mono unless said otherwise, at a rate the
caller names. FFmpeg does the codec and resampling work (libavcodec, libswresample); Python
only moves bytes between them.

What PyAV does not give us: Opus in-band FEC and packet loss concealment. libopus can decode
the FEC copy of a lost frame from the next packet (`opus_decode(..., decode_fec=1)`) and
conceal a loss (`opus_decode(NULL, ...)`), but FFmpeg's libopus and native Opus decoders
expose neither (an empty packet means "drain"), so a lost frame becomes silence
(relay.transcode.chain), as it does for every other codec.

FFmpeg's own messages: PyAV drops them unless told a level, so every decoder and encoder made
here first sets PyAV's level from the `libav` logger's (the `ffmpeg` subsystem,
`log-level-ffmpeg`, docs/spec/config.md §2.9); they then reach stdlib logging as
`libav.<component>` (rtpvault.logsetup shows FFmpeg's INFO as NOTICE, as rtpengine does).

The fast path (issue 19): when the package build made relay.transcode._avcodec (setup.py, a
small C module over the system's libavcodec and libswresample: PyAV's per-call wrapper costs
more than FFmpeg's work for a 20-ms G.722 packet, docs/PERFORMANCE.md), G.722 decode (with its
resampling), G.722 encode and mono s16 resampling go through it; PyAV does the rest, and all of
it when the module is missing or RTPVAULT_PURE=1 (relay.compiled.pure). That module's FFmpeg
is the system's and stays quiet (a rejected payload raises AudioError instead).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from types import ModuleType
from typing import TYPE_CHECKING, cast

import av
import av.logging
from av.audio.codeccontext import AudioCodecContext
from av.audio.resampler import AudioResampler
from av.filter import Graph

from relay import compiled
from relay.transcode import g711
from relay.transcode.codecs import AudioCodec, opus_channels, opus_options, opus_ptime

if TYPE_CHECKING:
    from relay.transcode import _avcodec

__all__ = ["AudioError", "ComfortNoise", "Decoder", "Encoder", "Resampler", "frame_samples"]


class AudioError(ValueError):
    """A payload FFmpeg could not decode, or an encoder that could not be set up."""


_LAYOUTS = {1: "mono", 2: "stereo"}


def _native_module() -> ModuleType | None:
    if compiled.pure():
        return None
    try:
        from relay.transcode import _avcodec
    except ImportError:  # not built: no FFmpeg headers at install, or a source tree
        return None
    return _avcodec


NATIVE = _native_module()
"""relay.transcode._avcodec when it is built and in use, else None."""
NATIVE_CODECS = frozenset({"g722"})
"""Codecs (AudioCodec.name) NATIVE decodes and encodes; the others (Opus with its options and
stereo, the rest rarely transcoded) stay on PyAV."""


FFMPEG_LOGGER = "libav"
"""PyAV logs FFmpeg's messages under `libav.<component>`."""
_AV_LEVELS = ((logging.DEBUG, av.logging.DEBUG), (logging.INFO, av.logging.INFO),
              (logging.WARNING, av.logging.WARNING), (logging.ERROR, av.logging.ERROR),
              (logging.CRITICAL, av.logging.FATAL))  # fmt: skip
_av_level: list[int | None] = [None]


def follow_ffmpeg_level() -> None:
    """Let FFmpeg's messages through PyAV down to the `libav` logger's level (none when it is
    off); cheap when nothing changed, so called for every codec context made."""
    level = logging.getLogger(FFMPEG_LOGGER).getEffectiveLevel()
    wanted = next((av_level for py, av_level in _AV_LEVELS if level <= py), None)
    if wanted != _av_level[0]:
        av.logging.set_level(wanted)
        _av_level[0] = wanted


def _frame(pcm: bytes, rate: int, channels: int = 1) -> av.AudioFrame:
    samples = len(pcm) // 2 // channels
    frame = av.AudioFrame(format="s16", layout=_LAYOUTS[channels], samples=samples)
    frame.planes[0].update(pcm)
    frame.sample_rate = rate
    return frame


def _pcm(frames: list[av.AudioFrame]) -> bytes:
    # a packed s16 frame's plane may be padded beyond its samples: cut at the real length
    return b"".join(bytes(f.planes[0])[: f.samples * 2 * len(f.layout.channels)] for f in frames)


class _Input:
    """A reusable s16 input frame of one size and rate (per packet: one copy into its plane
    instead of a new AudioFrame, 1 µs and a few allocations less)."""

    __slots__ = ("frame", "plane", "size")

    def __init__(self, samples: int, rate: int, channels: int = 1) -> None:
        self.frame = av.AudioFrame(format="s16", layout=_LAYOUTS[channels], samples=samples)
        self.frame.sample_rate = rate
        self.plane = self.frame.planes[0]
        self.size = samples * 2 * channels

    def load(self, pcm: bytes) -> av.AudioFrame:
        self.plane.update(pcm)
        return self.frame


class _Swr:
    """libswresample in a filter graph (abuffer → aresample → aformat → abuffersink) for one
    input format, layout and rate → mono s16 at `rate`.

    Not PyAV's AudioResampler, which is the same graph: it pulls until FFmpeg says EAGAIN, an
    exception per call (3 µs), 11 µs a 20-ms packet against 4 µs here. aresample turns each
    frame pushed into at most one frame out (none while its filter fills), so one pull per
    push drains it."""

    __slots__ = ("_graph", "_src", "_sink")

    def __init__(self, frame: av.AudioFrame, rate: int) -> None:
        self._graph = graph = Graph()  # kept: its filter contexts die with it
        self._src = graph.add("abuffer", sample_rate=str(frame.sample_rate),
                              sample_fmt=frame.format.name, channel_layout=frame.layout.name)
        resample = graph.add("aresample", str(rate))
        fmt = graph.add("aformat", sample_rates=str(rate), sample_fmts="s16",
                        channel_layouts="mono")  # fmt: skip
        self._sink = graph.add("abuffersink")
        self._src.link_to(resample)
        resample.link_to(fmt)
        fmt.link_to(self._sink)
        graph.configure()

    def resample(self, frame: av.AudioFrame) -> bytes:
        frame.pts = None  # our time line is the RTP one; swresample needs no pts
        self._src.push(frame)
        try:
            out = cast(av.AudioFrame, self._sink.pull())
        except av.FFmpegError:  # EAGAIN: the filter is still filling
            return b""
        data, size = bytes(out.planes[0]), out.samples * 2
        return data if len(data) == size else data[:size]  # the plane may be padded


class Resampler:
    """Any decoded frame → mono s16 PCM at `rate` (libswresample)."""

    __slots__ = ("rate", "_swr", "_inputs", "_native")

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._swr: dict[tuple[str, str, int], _Swr] = {}
        self._inputs: dict[tuple[int, int], tuple[_Input, _Swr]] = {}
        self._native: dict[int, _avcodec.Resampler] = {}

    def frames(self, frames: list[av.AudioFrame]) -> bytes:
        out = []
        for f in frames:
            key = (f.format.name, f.layout.name, f.sample_rate)
            swr = self._swr.get(key)
            if swr is None:
                swr = self._swr[key] = _Swr(f, self.rate)
            out.append(swr.resample(f))
        return b"".join(out)

    def pcm(self, pcm: bytes, rate: int) -> bytes:
        """Mono s16 PCM at `rate` → mono s16 PCM at this resampler's rate."""
        if rate == self.rate or not pcm:
            return pcm
        if NATIVE is not None:
            native = self._native.get(rate)
            if native is None:
                try:
                    native = self._native[rate] = NATIVE.Resampler(rate, self.rate)
                except ValueError as exc:
                    raise AudioError(f"resampler {rate} → {self.rate}: {exc}") from None
            try:
                return native.convert(pcm)
            except ValueError as exc:
                raise AudioError(str(exc)) from None
        key = (len(pcm), rate)
        got = self._inputs.get(key)
        if got is None:
            if len(self._inputs) > 8:  # odd sizes (file ends, tones): do not grow unbounded
                self._inputs.clear()
            inp = _Input(len(pcm) // 2, rate)
            swr_key = ("s16", "mono", rate)
            swr = self._swr.get(swr_key)
            if swr is None:
                swr = self._swr[swr_key] = _Swr(inp.frame, self.rate)
            got = self._inputs[key] = (inp, swr)
        return got[1].resample(got[0].load(pcm))


class Decoder:
    """One payload type's decoder: RTP payload → mono PCM at `out_rate`. G.711 is decoded by
    relay.transcode.g711's tables (FFmpeg's own values, no PyAV frame per packet), the rest by
    FFmpeg."""

    __slots__ = ("codec", "_ctx", "_resampler", "_out_rate", "_g711", "_native")

    def __init__(self, codec: AudioCodec, out_rate: int) -> None:
        follow_ffmpeg_level()
        self.codec = codec
        self._out_rate = out_rate
        self._resampler = Resampler(out_rate)
        self._g711 = g711.law(codec.name) if codec.name in g711.LAWS else None
        self._native = _native_decoder(codec, out_rate)
        if self._g711 is not None or self._native is not None:
            return
        try:
            ctx = cast(AudioCodecContext, av.CodecContext.create(codec.decoder, "r"))
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError(f"no FFmpeg decoder {codec.decoder}: {exc}") from None
        ctx.sample_rate = codec.sample_rate
        ctx.layout = "mono"  # Opus decodes either way; telephony legs want mono
        self._ctx = ctx

    def decode(self, payload: bytes) -> tuple[bytes, int]:
        """(the payload's audio as mono s16 at `out_rate`, how many samples it held at the
        codec's own rate); AudioError when FFmpeg rejects it."""
        if not payload:
            raise AudioError("empty payload")
        if self._g711 is not None:
            return self._resampler.pcm(self._g711.decode(payload), 8000), len(payload)
        if self._native is not None:
            try:
                return self._native.decode(payload)
            except ValueError as exc:
                raise AudioError(f"{self.codec.name}: {exc}") from None
        try:
            frames = self._ctx.decode(av.Packet(payload))
            native = 0
            out = []
            for f in frames:
                native += f.samples
                if f.sample_rate == self._out_rate and f.format.name == "s16" \
                        and f.layout.nb_channels == 1:
                    out.append(bytes(f.planes[0])[: f.samples * 2])  # no swresample round
                    continue
                out.append(self._resampler.frames([f]))
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError(f"{self.codec.name}: {exc}") from None
        return b"".join(out), native


def _native_decoder(codec: AudioCodec, out_rate: int) -> _avcodec.Decoder | None:
    if NATIVE is None or codec.name not in NATIVE_CODECS:
        return None
    try:
        dec: _avcodec.Decoder = NATIVE.Decoder(codec.decoder, codec.sample_rate, out_rate)
    except ValueError:  # the system's FFmpeg lacks it: PyAV's may have it
        return None
    return dec


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

    __slots__ = ("codec", "ptime", "frame", "ticks", "channels", "bitrate", "_ctx", "_up", "_pts",
                 "_g711", "_in", "_tb", "_native")  # fmt: skip

    def __init__(self, codec: AudioCodec, ptime: int = 20, fmtp: str = "") -> None:
        follow_ffmpeg_level()
        if codec.encoder is None:
            raise AudioError(f"FFmpeg has no {codec.name} encoder")
        self.codec = codec
        self.frame = frame_samples(codec, ptime)
        self.ptime = self.frame * 1000 // codec.sample_rate
        self.ticks = int(self.frame * codec.ticks_per_sample)
        self.channels = opus_channels(fmtp) if codec.name == "opus" else 1
        self._pts = 0
        self._tb = Fraction(1, codec.sample_rate)
        self._in = _Input(self.frame, codec.sample_rate)
        self.bitrate = 0
        self._up = None
        self._g711 = g711.law(codec.name) if codec.name in g711.LAWS else None
        self._native: _avcodec.Encoder | None = None
        if self._g711 is not None:
            return  # relay.transcode.g711: FFmpeg's tables, no codec context
        if NATIVE is not None and codec.name in NATIVE_CODECS and self.channels == 1:
            try:
                self._native = NATIVE.Encoder(codec.encoder, codec.sample_rate, self.frame)
                return
            except ValueError:  # the system's FFmpeg lacks it: PyAV's may have it
                self._native = None
        ctx = cast(AudioCodecContext, av.CodecContext.create(codec.encoder, "w"))
        ctx.sample_rate = codec.sample_rate
        ctx.layout = _LAYOUTS[self.channels]
        ctx.format = "s16"
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
        self._in.frame.time_base = self._tb

    def encode(self, pcm: bytes) -> bytes:
        """One packet's payload from `frame` mono samples; AudioError if FFmpeg fails."""
        if self._g711 is not None:
            return self._g711.encode(pcm)
        if self._native is not None:
            try:
                return self._native.encode(pcm)
            except ValueError as exc:
                raise AudioError(f"{self.codec.encoder}: {exc}") from None
        if len(pcm) == self._in.size:
            frame = self._in.load(pcm)  # the encoder is done with it when encode returns
        else:
            frame = _frame(pcm, self.codec.sample_rate)
            frame.time_base = self._tb
        if self._up is not None:
            up = self._up.resample(frame)
            frame = _frame(_pcm(up), self.codec.sample_rate, 2)
            frame.time_base = self._tb
        frame.pts = self._pts
        self._pts += frame.samples
        try:
            packets = self._ctx.encode(frame)
            return bytes(packets[0]) if len(packets) == 1 else b"".join(map(bytes, packets))
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError(f"{self.codec.encoder}: {exc}") from None


class ComfortNoise:
    """RFC 3389 comfort noise from fixed parameters (a CN payload: level, then reflection
    coefficients), made by FFmpeg's `comfortnoise` decoder (80 ms a payload), as mono s16 at
    `out_rate`: what fills a DTX gap with `dtx-cn-params`."""

    __slots__ = ("_decoder", "_params", "_buf")

    def __init__(self, params: bytes, out_rate: int) -> None:
        self._decoder = Decoder(AudioCodec("cn", "comfortnoise", None, 8000, 8000), out_rate)
        self._params = params
        self._buf = bytearray()

    def pcm(self, samples: int) -> bytes:
        """The next `samples` of noise; AudioError if FFmpeg rejects the parameters."""
        while len(self._buf) < 2 * samples:
            pcm, native = self._decoder.decode(self._params)
            if not native:
                raise AudioError("the comfort noise decoder gave nothing")
            self._buf += pcm
        out = bytes(self._buf[: 2 * samples])
        del self._buf[: 2 * samples]
        return out
