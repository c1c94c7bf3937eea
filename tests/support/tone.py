"""Known tones for media tests: a G.711 µ-law sine to send, and the strongest frequency of what
came back.

The analysis is a Goertzel filter per candidate frequency (a single DFT bin each), pure Python
over a fraction of a second of 8 kHz audio: no numpy in the test environment, and one bin per
frequency is all a "which tone is this?" question needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from recorder.g711 import ULAW_TO_LINEAR, encode_ulaw

RATE = 8000
"""G.711 sample rate (Hz)."""


def ulaw_tone(hz: float, first_sample: int, count: int = 160, amplitude: int = 8000) -> bytes:
    """`count` µ-law samples of a sine at `hz`, starting at sample index `first_sample`."""
    return bytes(
        encode_ulaw(round(amplitude * math.sin(2 * math.pi * hz * (first_sample + n) / RATE)))
        for n in range(count)
    )


def ulaw_samples(payload: bytes) -> list[int]:
    """Linear 16-bit samples of a µ-law payload."""
    return [ULAW_TO_LINEAR[b] for b in payload]


def power(samples: Sequence[float], hz: float, rate: int = RATE) -> float:
    """Goertzel power of `samples` at `hz` (normalised by the window length)."""
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / max(len(samples), 1)


def dominant_hz(
    samples: Sequence[float], rate: int = RATE, low: int = 100, high: int = 3800, step: int = 20
) -> float:
    """The frequency on the grid low..high (in `step` Hz) where `samples` is strongest."""
    return float(max(range(low, high + 1, step), key=lambda f: power(samples, f, rate)))


def pcm_tone(hz: float, first_sample: int, count: int, rate: int, amplitude: int = 8000) -> bytes:
    """`count` signed 16-bit little-endian samples of a sine at `hz`, sampled at `rate`."""
    return b"".join(
        round(amplitude * math.sin(2 * math.pi * hz * (first_sample + n) / rate)).to_bytes(
            2, "little", signed=True)
        for n in range(count)
    )  # fmt: skip


def pcm_samples(pcm: bytes) -> list[int]:
    """Signed 16-bit little-endian PCM → samples."""
    return [int.from_bytes(pcm[i : i + 2], "little", signed=True) for i in range(0, len(pcm), 2)]


def snr_db(samples: Sequence[float], hz: float, rate: int = RATE) -> float:
    """Signal-to-noise ratio (dB) of a sine at `hz` in `samples`: the least-squares sine at
    that frequency is the signal, everything else (distortion, codec noise) the noise."""
    n = len(samples)
    w = 2 * math.pi * hz / rate
    cos_t = [math.cos(w * i) for i in range(n)]
    sin_t = [math.sin(w * i) for i in range(n)]
    a = 2 / n * sum(x * c for x, c in zip(samples, cos_t, strict=True))
    b = 2 / n * sum(x * s for x, s in zip(samples, sin_t, strict=True))
    noise = sum((x - a * c - b * s) ** 2 for x, c, s in zip(samples, cos_t, sin_t, strict=True))
    signal = n * (a * a + b * b) / 2
    return 10 * math.log10(signal / noise) if noise else math.inf
