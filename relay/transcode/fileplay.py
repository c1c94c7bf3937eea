"""Audio from a media file (or a blob) as RTP payloads of one codec, one frame at a time, for
`play media` (docs/spec/ng-protocol.md §9.2).

PyAV (FFmpeg's libavformat, libswresample and libavcodec) opens any file FFmpeg reads, decodes
it, resamples to the codec's rate, mono 16-bit, cuts it into `ptime` frames and encodes each.
Opening reads the header only (the reply needs the duration, and an unreadable file is an error
before anything is sent); decoding then happens frame by frame as the player asks, so a long file
never holds the event loop for more than one container packet.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av

from relay.transcode.plan import Codec


class MediaError(Exception):
    """The file cannot be played (not found, not media, no audio, no encoder for the codec)."""


@dataclass(frozen=True, slots=True)
class Encoding:
    """How one RTP codec is produced with FFmpeg."""

    encoder: str
    rate: int
    """Sample rate the encoder is fed (G.722: 16 kHz under an 8000 RTP clock)."""
    options: tuple[tuple[str, str], ...] = ()


ENCODINGS = {
    "pcmu/8000": Encoding("pcm_mulaw", 8000),
    "pcma/8000": Encoding("pcm_alaw", 8000),
    "g722/8000": Encoding("g722", 16000),
    "opus/48000": Encoding("libopus", 48000, (("application", "voip"),)),
}
"""`name/clock` (lower case) → encoder; what rtpvault can play a file in."""


def encoding_for(codec: Codec) -> Encoding | None:
    return ENCODINGS.get(f"{codec.name.lower()}/{codec.clock}")


class FileSource:
    """One file opened for playback: `duration_ms` for the reply, `next_payload()` per frame."""

    def __init__(self, data: str | bytes, codec: Codec, ptime: int = 20, repeat: int = 1) -> None:
        enc = encoding_for(codec)
        if enc is None:
            raise MediaError(f"no encoder for {codec.key}")
        try:
            self._container: Any = av.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaError(str(exc)) from None
        try:
            audio = self._container.streams.audio
            if not audio:
                raise MediaError("no audio stream")
            self._stream = audio[0]
            self.duration_ms = _duration_ms(self._container, self._stream)
            self._samples = enc.rate * ptime // 1000
            encoder: Any = av.CodecContext.create(enc.encoder, "w")
            encoder.sample_rate = enc.rate
            encoder.layout = "mono"
            encoder.format = "s16"
            for key, value in enc.options:
                encoder.options[key] = value
            encoder.open()
            self._encoder = encoder
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=enc.rate,
                                                frame_size=self._samples)  # fmt: skip
        except (av.FFmpegError, ValueError) as exc:
            self.close()
            raise MediaError(str(exc)) from None
        except MediaError:
            self.close()
            raise
        self.clock = codec.clock
        self.ts_per_frame = codec.clock * ptime // 1000
        self._repeat = max(repeat, 1)
        self._frames: Iterator[Any] = self._decode()
        self._out: deque[bytes] = deque()
        self._done = False

    def _decode(self) -> Iterator[Any]:
        """Decoded frames of the audio stream, `repeat` times over."""
        while True:
            yield from self._container.decode(self._stream)
            self._repeat -= 1
            if self._repeat <= 0:
                return
            self._container.seek(0)

    def next_payload(self) -> bytes | None:
        """The next frame's payload; None when the file (and its repeats) ended."""
        while not self._out and not self._done:
            frame = next(self._frames, None)
            frames = self._resampler.resample(frame)
            if frame is None:
                self._done = True
            for f in frames:
                self._encode(f)
            if self._done:
                for packet in self._encoder.encode(None):
                    self._out.append(bytes(packet))
        return self._out.popleft() if self._out else None

    def _encode(self, frame: Any) -> None:
        if frame.samples < self._samples:  # the last, short frame: padded with silence
            pad = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
            pad.sample_rate = frame.sample_rate
            raw = bytes(frame.planes[0])[: frame.samples * 2]
            pad.planes[0].update(raw + bytes(self._samples * 2 - len(raw)))
            frame = pad
        frame.pts = None
        for packet in self._encoder.encode(frame):
            self._out.append(bytes(packet))

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()


def _duration_ms(container: Any, stream: Any) -> int:
    """rtpengine's `duration`: the stream's duration in its time base, in ms (else the
    container's, in µs)."""
    if stream.duration is not None and stream.time_base is not None:
        return int(stream.duration * 1000 * stream.time_base.numerator
                   // stream.time_base.denominator)  # fmt: skip
    if container.duration is not None:
        return int(container.duration // 1000)
    return 0
