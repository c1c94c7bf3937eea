"""relay.transcode.detect: every digit at rtpengine's tone level and quieter is found once,
plain tones, speech-band noise and silence are not digits."""

from __future__ import annotations

import random
import struct

import pytest

from relay.transcode.detect import DtmfDetector
from relay.transcode.dtmf import tone_pcm
from tests.support.tone import pcm_tone


@pytest.mark.parametrize("volume", [0, 10, 25])
@pytest.mark.parametrize("code", range(16))
def test_each_digit_is_detected_once(code: int, volume: int) -> None:
    pcm = bytes(1600) + tone_pcm(code, volume, 0, 800, 8000) + bytes(1600)
    assert list(DtmfDetector().feed(pcm)) == [("start", code), ("end", code)]


def test_two_digits_in_a_row_fed_in_odd_chunks() -> None:
    pcm = tone_pcm(1, 10, 0, 800, 8000) + bytes(800) + tone_pcm(11, 10, 0, 800, 8000) + bytes(1600)
    d = DtmfDetector()
    got = [ev for i in range(0, len(pcm), 222) for ev in d.feed(pcm[i : i + 222])]
    assert got == [("start", 1), ("end", 1), ("start", 11), ("end", 11)]


@pytest.mark.parametrize("hz", [440, 697, 1000, 1336])
def test_a_single_tone_is_not_a_digit(hz: int) -> None:
    assert list(DtmfDetector().feed(pcm_tone(hz, 0, 8000, 8000))) == []


def test_noise_is_not_a_digit() -> None:
    rng = random.Random(1)
    noise = struct.pack("<8000h", *(rng.randint(-8000, 8000) for _ in range(8000)))
    assert list(DtmfDetector().feed(noise)) == []


def test_the_tone_has_rtpengines_level() -> None:
    # lib/dtmflib.c: each frequency at 32767 / (2 × 1.122018^volume), peak of the sum
    peak = max(abs(v) for v in struct.unpack("<800h", tone_pcm(1, 0, 0, 800, 8000)))
    assert 32000 < peak <= 32767
    peak10 = max(abs(v) for v in struct.unpack("<800h", tone_pcm(1, 10, 0, 800, 8000)))
    assert abs(peak10 - 32767 / 1.122018**10) < 400
