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
