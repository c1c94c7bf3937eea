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
    """Signal-to-noise ratio (dB) of `samples` as a sine at `hz`: the least-squares fit of
    a·sin + b·cos + c (amplitude, phase and DC unknown) is the signal, the residual the noise.

    A codec chain that keeps the pitch and loses nothing leaves only its coding noise; a gap,
    a repeated or dropped frame, or a drift in pitch shows as a large residual."""
    n = len(samples)
    if n < 3:
        raise ValueError("need at least 3 samples")
    w = 2 * math.pi * hz / rate
    s = [math.sin(w * i) for i in range(n)]
    c = [math.cos(w * i) for i in range(n)]
    # Normal equations of the 3-parameter fit, solved by Cramer's rule (no numpy here).
    ss = sum(x * x for x in s)
    cc = sum(x * x for x in c)
    sc = sum(x * y for x, y in zip(s, c, strict=True))
    s1, c1 = sum(s), sum(c)
    ys = sum(x * y for x, y in zip(s, samples, strict=True))
    yc = sum(x * y for x, y in zip(c, samples, strict=True))
    y1 = float(sum(samples))
    m = [[ss, sc, s1], [sc, cc, c1], [s1, c1, float(n)]]
    rhs = [ys, yc, y1]

    def det(a: list[list[float]]) -> float:
        return (
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        )

    d = det(m)
    coef = []
    for k in range(3):
        mk = [row[:] for row in m]
        for r in range(3):
            mk[r][k] = rhs[r]
        coef.append(det(mk) / d)
    a, b, dc = coef
    signal = noise = 0.0
    for i in range(n):
        fit = a * s[i] + b * c[i]
        signal += fit * fit
        res = samples[i] - fit - dc
        noise += res * res
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10 * math.log10(signal / noise)


def rtp_ulaw_samples(packets: Sequence[bytes], pt: int = 0) -> list[int]:
    """The linear samples of a µ-law RTP stream, placed by RTP timestamp (gaps as silence,
    duplicates once), from the first packet's timestamp; other payload types are ignored."""
    frames: dict[int, bytes] = {}
    base: int | None = None
    for p in packets:
        if len(p) < 12 or p[1] & 0x7F != pt:
            continue
        cc = p[0] & 0x0F
        start = 12 + 4 * cc
        if p[0] & 0x10:  # header extension
            start += 4 + 4 * int.from_bytes(p[start + 2 : start + 4], "big")
        end = len(p) - (p[-1] if p[0] & 0x20 else 0)
        ts = int.from_bytes(p[4:8], "big")
        if base is None:
            base = ts
        frames.setdefault((ts - base) & 0xFFFFFFFF, p[start:end])
    if not frames:
        return []
    # Timestamps before the first packet (reordering) wrap to huge offsets: drop those.
    frames = {k: v for k, v in frames.items() if k < 1 << 31}
    out = [0] * max(k + len(v) for k, v in frames.items())
    for k, v in frames.items():
        out[k : k + len(v)] = ulaw_samples(v)
    return out
