"""Audio from a media file (or a blob) as RTP payloads of one codec, one frame at a time, for
`play media` (docs/spec/ng-protocol.md §9.2).

FFmpeg's libavformat (PyAV's container API) opens any file FFmpeg reads and decodes its first
audio stream; relay.transcode.audio's Resampler and Encoder (libswresample, libavcodec) turn that
into mono PCM at the codec's rate and cut and encode it into `ptime` frames, the same encoders
the transcoding chain uses. Opening reads the header only (the reply needs the duration, and an
unreadable file is an error before anything is sent); decoding then happens frame by frame as
the player asks, so a long file never holds the event loop for more than one container packet.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from typing import Any

import av

from relay.transcode.audio import AudioError, Encoder, Resampler
from relay.transcode.codecs import AudioCodec, lookup
from relay.transcode.plan import Codec


class MediaError(Exception):
    """The file cannot be played (not found, not media, no audio, no encoder for the codec)."""


def encoding_for(codec: Codec) -> AudioCodec | None:
    """The FFmpeg codec that produces `codec`'s payloads; None when FFmpeg has no encoder."""
    found = lookup(codec.name, codec.clock)
    return found if found is not None and found.encoder is not None else None


class FileSource:
    """One file opened for playback: `duration_ms` for the reply, `next_payload()` per frame."""

    def __init__(self, data: str | bytes, codec: Codec, ptime: int = 20, repeat: int = 1) -> None:
        audio_codec = encoding_for(codec)
        if audio_codec is None:
            raise MediaError(f"no encoder for {codec.key}")
        try:
            self._encoder = Encoder(audio_codec, ptime, codec.fmtp)
        except AudioError as exc:
            raise MediaError(str(exc)) from None
        if isinstance(data, str):
            _check_regular_file(data)
        try:
            self._container: Any = av.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaError(str(exc)) from None
        streams = self._container.streams.audio
        if not streams:
            self.close()
            raise MediaError("no audio stream")
        self._stream = streams[0]
        self.duration_ms = _duration_ms(self._container, self._stream)
        self._resampler = Resampler(audio_codec.sample_rate)
        self._chunk = 2 * self._encoder.frame
        self.ts_per_frame = self._encoder.ticks
        self.ptime_ms = self._encoder.ptime
        """The packet length the encoder settled on (Opus and G.723.1 round the asked one)."""
        self._repeat = max(repeat, 1)
        self._frames: Iterator[Any] = self._decode()
        self._pcm = b""
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
        """The next frame's payload; None when the file (and its repeats) ended. A file that
        turns out broken half-way ends there (MediaError)."""
        while len(self._pcm) < self._chunk and not self._done:
            try:
                frame = next(self._frames, None)
            except (av.FFmpegError, ValueError) as exc:
                raise MediaError(str(exc)) from None
            if frame is None:
                self._done = True
                if self._pcm:  # the last, short frame: padded with silence
                    self._pcm += bytes(self._chunk - len(self._pcm))
            else:
                self._pcm += self._resampler.frames([frame])
        if len(self._pcm) < self._chunk:
            return None
        chunk, self._pcm = self._pcm[: self._chunk], self._pcm[self._chunk :]
        return self._encoder.encode(chunk)

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()


def _check_regular_file(path: str) -> None:
    """Only a regular local file: FFmpeg would also open a FIFO (which blocks until a writer
    comes), a device or a URL (network I/O), any of which would hold the worker's loop."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as exc:
        raise MediaError(str(exc)) from None
    if not stat.S_ISREG(mode):
        raise MediaError(f"{path}: not a regular file")


def _duration_ms(container: Any, stream: Any) -> int:
    """rtpengine's `duration`: the stream's duration in its time base, in ms (else the
    container's, in µs)."""
    if stream.duration is not None and stream.time_base is not None:
        return int(stream.duration * 1000 * stream.time_base.numerator
                   // stream.time_base.denominator)  # fmt: skip
    if container.duration is not None:
        return int(container.duration // 1000)
    return 0
