"""G.711 µ-law and A-law decoding to 16-bit linear PCM (ITU-T G.711, tables 1a/1b and 2a/2b).

Hand-written on purpose: the stdlib `audioop` that used to do this is deprecated (PEP 594) and
gone in Python 3.13, and the libraries that replace it (numpy-based audio stacks, PyAV/ffmpeg)
are heavy native dependencies for what is two 256-entry tables. The tables are computed once at
import from the standard's segment/mantissa rules, and a payload decodes with one `bytes`
translation per byte pair — pure and fast enough for export.

Encoders are here only so tests can check the laws (decode ∘ encode is the nearest code); the
relay never transcodes.
"""

from __future__ import annotations

__all__ = [
    "ULAW_TO_LINEAR", "ALAW_TO_LINEAR", "decode_ulaw", "decode_alaw", "encode_ulaw",
    "encode_alaw", "DECODERS",
]  # fmt: skip

_BIAS = 0x84  # µ-law bias (132), G.711 §3.2


def _ulaw(code: int) -> int:
    """One µ-law code → linear sample (G.711 table 2a/2b, values scaled to 16 bits)."""
    u = ~code & 0xFF
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return -magnitude if sign else magnitude


def _alaw(code: int) -> int:
    """One A-law code → linear sample (G.711 table 1a/1b; even bits inverted, 0x55)."""
    a = code ^ 0x55
    sign, exponent, mantissa = a & 0x80, (a >> 4) & 0x07, a & 0x0F
    if exponent == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if sign else -magnitude


ULAW_TO_LINEAR: tuple[int, ...] = tuple(_ulaw(c) for c in range(256))
ALAW_TO_LINEAR: tuple[int, ...] = tuple(_alaw(c) for c in range(256))


def _pcm_table(table: tuple[int, ...]) -> list[bytes]:
    return [v.to_bytes(2, "little", signed=True) for v in table]


_ULAW_LE = _pcm_table(ULAW_TO_LINEAR)
_ALAW_LE = _pcm_table(ALAW_TO_LINEAR)


def decode_ulaw(payload: bytes) -> bytes:
    """µ-law bytes → little-endian signed 16-bit PCM (2 bytes per input byte)."""
    t = _ULAW_LE
    return b"".join([t[b] for b in payload])


def decode_alaw(payload: bytes) -> bytes:
    """A-law bytes → little-endian signed 16-bit PCM (2 bytes per input byte)."""
    t = _ALAW_LE
    return b"".join([t[b] for b in payload])


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for seg, end in enumerate(ends):
        if value <= end:
            return seg
    return len(ends)


_U_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_A_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def encode_ulaw(sample: int) -> int:
    """Linear 16-bit sample → µ-law code (G.711 §3.2: 14-bit magnitude, bias 33, clip 8159)."""
    value = sample >> 2
    mask = 0x7F if value < 0 else 0xFF
    value = min(-value if value < 0 else value, 8159) + 0x21
    seg = _segment(value, _U_ENDS)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask


def encode_alaw(sample: int) -> int:
    """Linear 16-bit sample → A-law code (G.711 §3.1: 13-bit magnitude, even bits inverted)."""
    value = sample >> 3
    mask = 0xD5
    if value < 0:
        mask, value = 0x55, -value - 1
    seg = _segment(value, _A_ENDS)
    if seg >= 8:
        return 0x7F ^ mask
    mantissa = (value >> 1) if seg < 2 else (value >> seg)
    return ((seg << 4) | (mantissa & 0x0F)) ^ mask


DECODERS = {"PCMU": decode_ulaw, "PCMA": decode_alaw}
