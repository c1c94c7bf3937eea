"""relay.transcode._avcodec (the C module over the system's libavcodec/libswresample): used by
relay.transcode.audio when built, off under RTPVAULT_PURE=1, and bad input raises AudioError
instead of crashing the worker. The tone SNR tests (test_chain_audio.py) cover its audio."""

from __future__ import annotations

import importlib.machinery
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.transcode import audio
from relay.transcode.audio import AudioError
from relay.transcode.codecs import lookup

REPO = Path(__file__).resolve().parents[3]
BUILT = any((REPO / "relay" / "transcode" / f"_avcodec{s}").exists()
            for s in importlib.machinery.EXTENSION_SUFFIXES)  # fmt: skip
PURE = os.environ.get("RTPVAULT_PURE", "") not in ("", "0")
# .ci/bootstrap builds it (FFmpeg's -dev packages): under CI=true a missing build fails the
# tests below instead of skipping them; RTPVAULT_PURE=1 means it is off on purpose
native = pytest.mark.skipif(PURE or (not BUILT and os.environ.get("CI") != "true"),
                            reason="relay.transcode._avcodec not in use")  # fmt: skip
G722 = lookup("G722", 8000)
assert G722 is not None


def tone(hz: float, rate: int, samples: int) -> bytes:
    return struct.pack(f"<{samples}h", *(int(8000 * math.sin(2 * math.pi * hz * i / rate))
                                         for i in range(samples)))  # fmt: skip


@native
def test_g722_goes_through_the_extension_when_it_is_built() -> None:
    assert audio.NATIVE is not None
    assert audio.Decoder(G722, 8000)._native is not None
    assert audio.Encoder(G722, 20)._native is not None
    assert audio.Resampler(16000)._native == {}


def test_rtpvault_pure_keeps_pyav() -> None:
    code = "import relay.transcode.audio as a; print(a.NATIVE is None)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "RTPVAULT_PURE": "1"}, check=True)  # fmt: skip
    assert out.stdout.strip() == "True"


def test_g722_encode_then_decode_is_320_samples_at_16k_and_160_at_8k() -> None:
    enc = audio.Encoder(G722, 20)
    payload = enc.encode(tone(1000, 16000, 320))
    assert len(payload) == 160
    pcm16, native16 = audio.Decoder(G722, 16000).decode(payload)
    assert (len(pcm16), native16) == (640, 320)
    _, native8 = audio.Decoder(G722, 8000).decode(payload)
    assert native8 == 320


def test_a_wrong_pcm_size_or_an_empty_payload_is_an_audio_error() -> None:
    with pytest.raises(AudioError):
        audio.Decoder(G722, 8000).decode(b"")
    if audio.Encoder(G722, 20)._native is not None:  # PyAV pads a short last frame instead
        with pytest.raises(AudioError):
            audio.Encoder(G722, 20).encode(b"\0" * 100)


@native
@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=1500), min_size=1, max_size=8))
def test_garbage_payloads_decode_or_raise_audio_error(payloads: list[bytes]) -> None:
    dec = audio.Decoder(G722, 8000)
    into = out = 0
    for p in payloads:
        try:
            pcm, samples = dec.decode(p)
        except AudioError:
            assert not p
            continue
        assert samples == 2 * len(p)  # every byte is two G.722 samples
        into, out = into + samples, out + len(pcm) // 2
        assert len(pcm) % 2 == 0 and out <= into // 2  # 16 → 8 kHz, less the filter's delay


@native
@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["libopus", "opus", "gsm", "adpcm_g726", "g723_1", "ilbc"]),
       st.lists(st.binary(min_size=1, max_size=600), min_size=1, max_size=6))
def test_garbage_to_any_ffmpeg_decoder_raises_value_error_not_a_crash(
    name: str, payloads: list[bytes]
) -> None:
    from relay.transcode import _avcodec

    try:
        dec = _avcodec.Decoder(name, 8000 if name != "opus" else 48000, 16000)
    except ValueError:
        return  # this FFmpeg lacks it
    for p in payloads:
        try:
            pcm, samples = dec.decode(p)
        except ValueError:
            continue
        assert len(pcm) % 2 == 0 and samples >= 0


@native
def test_an_oversized_payload_and_bad_rates_are_rejected() -> None:
    from relay.transcode import _avcodec

    with pytest.raises(AudioError):
        audio.Decoder(G722, 8000).decode(b"\0" * 70000)
    for bad in (0, -8000, 10**9):
        with pytest.raises(ValueError):
            _avcodec.Resampler(bad, 8000)
        with pytest.raises(ValueError):
            _avcodec.Decoder("g722", 16000, bad)
    with pytest.raises(ValueError):
        _avcodec.Encoder("g722", 16000, 0)
    with pytest.raises(ValueError):
        _avcodec.Resampler(8000, 16000).convert(b"\0\0\0")  # half a sample
