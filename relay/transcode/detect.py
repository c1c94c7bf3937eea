"""In-band DTMF detection (ITU-T Q.23 tones in 8 kHz audio → digit start/end), pure Python.

Hand-written: rtpengine 10.5 uses spandsp's detector, and there is no maintained Python binding
of spandsp (nor another DTMF detector on PyPI that is not numpy/scipy based). A Goertzel filter
per DTMF frequency over 205-sample blocks (25.6 ms, the classic choice: the eight frequencies
fall close to DFT bins) is all it takes; at 8 kHz that is ~1,600 multiply-adds per block.

A block holds a digit when the strongest row and column tones carry most of the block's energy
(RELATIVE), neither is far weaker than the other (TWIST_DB), the audio is loud enough
(MIN_LEVEL) and the runner-up tones are well below (SECOND_DB). A digit starts after two
consecutive blocks agree and ends after two blocks without it, so speech seldom fakes one.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator

__all__ = ["BLOCK", "DtmfDetector", "KEYS"]

BLOCK = 205
RATE = 8000
ROWS = (697, 770, 852, 941)
COLS = (1209, 1336, 1477, 1633)
KEYS = ((1, 2, 3, 12), (4, 5, 6, 13), (7, 8, 9, 14), (10, 0, 11, 15))
"""[row][column] → RFC 4733 event code (1-9, 0, * = 10, # = 11, A-D = 12-15)."""
RELATIVE = 0.6
"""Row + column power over the block's energy (1.0 for two pure tones)."""
TWIST_DB = 8.0
SECOND_DB = 10.0
MIN_LEVEL = 200.0
"""RMS of the block, 16-bit scale (about -44 dBFS)."""
_COEFFS = tuple(2 * math.cos(2 * math.pi * f / RATE) for f in ROWS + COLS)


def _powers(x: tuple[int, ...]) -> list[float]:
    out = []
    for c in _COEFFS:
        s1 = s2 = 0.0
        for v in x:
            s1, s2 = v + c * s1 - s2, s1
        out.append(s1 * s1 + s2 * s2 - c * s1 * s2)
    return out


def block_digit(x: tuple[int, ...]) -> int | None:
    """The event code one block of samples holds, None for none."""
    energy = sum(v * v for v in x)
    if energy <= MIN_LEVEL**2 * len(x):
        return None
    p = _powers(x)
    scale = 4 / len(x)  # a sine of amplitude A gives A²N²/4; its energy is A²N/2
    rows, cols = [v * scale for v in p[:4]], [v * scale for v in p[4:]]
    r = max(range(4), key=rows.__getitem__)
    c = max(range(4), key=cols.__getitem__)
    if (rows[r] + cols[c]) / 2 < RELATIVE * energy:
        return None
    if min(rows[r], cols[c]) * 10 ** (TWIST_DB / 10) < max(rows[r], cols[c]):
        return None
    limit = 10 ** (-SECOND_DB / 10)
    if any(v > rows[r] * limit for i, v in enumerate(rows) if i != r):
        return None
    if any(v > cols[c] * limit for i, v in enumerate(cols) if i != c):
        return None
    return KEYS[r][c]


class DtmfDetector:
    """Feed 8 kHz mono s16le PCM; get ("start", code) and ("end", code) as digits come and go."""

    __slots__ = ("_rest", "_last", "_count", "_quiet", "digit")

    def __init__(self) -> None:
        self._rest = b""
        self._last: int | None = None
        self._count = 0
        self._quiet = 0
        self.digit: int | None = None
        """The digit under way, None between digits."""

    def feed(self, pcm: bytes) -> Iterator[tuple[str, int]]:
        data = self._rest + pcm
        whole = len(data) // (2 * BLOCK) * 2 * BLOCK
        self._rest = data[whole:]
        for off in range(0, whole, 2 * BLOCK):
            yield from self._block(block_digit(struct.unpack_from(f"<{BLOCK}h", data, off)))

    def _block(self, got: int | None) -> Iterator[tuple[str, int]]:
        self._count = self._count + 1 if got == self._last else 1
        self._last = got
        if self.digit is None:
            if got is not None and self._count >= 2:
                self.digit = got
                self._quiet = 0
                yield "start", got
            return
        if got == self.digit:
            self._quiet = 0
            return
        self._quiet += 1
        if self._quiet >= 2:
            ended, self.digit = self.digit, None
            yield "end", ended
            if got is not None and self._count >= 2:
                self.digit = got
                yield "start", got
