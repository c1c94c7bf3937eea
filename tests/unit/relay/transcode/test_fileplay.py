"""relay.transcode.fileplay: a WAV file becomes RTP payloads of the party's codec, through PyAV
(docs/spec/ng-protocol.md §9.2: 20-ms frames, a 1-s file is 50 packets, `duration` in ms)."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest

from relay.transcode.fileplay import FileSource, MediaError
from relay.transcode.plan import Codec
from tests.support.tone import dominant_hz, ulaw_samples

PCMU = Codec("PCMU", 8000)


def write_wav(path: Path, hz: float, seconds: float, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(
            struct.pack("<h", round(8000 * math.sin(2 * math.pi * hz * n / rate)))
            for n in range(int(rate * seconds))
        ))  # fmt: skip
    return path


def payloads(source: FileSource) -> list[bytes]:
    out = []
    while (p := source.next_payload()) is not None:
        out.append(p)
    return out


def test_a_one_second_wav_is_fifty_pcmu_frames_at_its_pitch(tmp_path: Path) -> None:
    source = FileSource(str(write_wav(tmp_path / "t.wav", 2000, 1.0)), PCMU)
    assert source.duration_ms == 1000
    frames = payloads(source)
    assert len(frames) == 50 and {len(f) for f in frames} == {160}
    assert dominant_hz(ulaw_samples(b"".join(frames[10:30]))) == 2000


def test_a_16khz_file_is_resampled_and_repeat_plays_it_again(tmp_path: Path) -> None:
    source = FileSource(str(write_wav(tmp_path / "t.wav", 1000, 0.5, 16000)), PCMU, repeat=2)
    assert source.duration_ms == 500  # the file's, not times the repeats (as rtpengine)
    frames = payloads(source)
    assert len(frames) == 50
    assert dominant_hz(ulaw_samples(b"".join(frames[30:45]))) == 1000


def test_a_blob_plays_like_a_file(tmp_path: Path) -> None:
    data = write_wav(tmp_path / "t.wav", 1000, 0.2).read_bytes()
    assert len(payloads(FileSource(data, PCMU))) == 10


def test_g722_frames(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "t.wav", 1000, 0.2)
    frames = payloads(FileSource(str(wav), Codec("G722", 8000)))
    assert len(frames) == 10 and {len(f) for f in frames} == {160}  # 320 samples at 16 kHz


@pytest.mark.parametrize("content", [None, b"garbage" * 50, b""])
def test_what_ffmpeg_cannot_read_is_a_media_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "x.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MediaError):
        FileSource(str(path), PCMU)
    with pytest.raises(MediaError):
        FileSource(b"xxxx", PCMU)


def test_a_codec_without_encoder_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        FileSource(str(write_wav(tmp_path / "t.wav", 1000, 0.2)), Codec("G729", 8000))


def test_only_regular_files_are_opened(tmp_path: Path) -> None:
    """A FIFO would block the loop until a writer came; a directory, a device or a URL are
    no media files either."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), str(tmp_path), "/dev/zero", "http://127.0.0.1:9/x.wav"):
        with pytest.raises(MediaError):
            FileSource(path, PCMU)


def test_a_webrtc_party_gets_opus_at_the_files_pitch(tmp_path: Path) -> None:
    from relay.transcode.audio import Decoder
    from relay.transcode.codecs import lookup

    wav = write_wav(tmp_path / "t.wav", 1000, 1.0)
    frames = payloads(FileSource(str(wav), Codec("opus", 48000, 2)))
    assert len(frames) == 50
    opus = lookup("opus", 48000)
    assert opus is not None
    decoder = Decoder(opus, 8000)
    pcm = b"".join(decoder.decode(f)[0] for f in frames)
    samples = list(struct.unpack(f"<{len(pcm) // 2}h", pcm))
    assert dominant_hz(samples[2000:6000]) == 1000
