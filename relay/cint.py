"""C's strtoll/strtoull on a digit run, for numbers peers send (ng bodies, SDP).

Python's int() refuses more than 4,300 digits (ValueError); rtpengine's C conversions clamp.
These clamp the same way without ever converting a long run.
"""

from __future__ import annotations

__all__ = ["INT64_MAX", "INT64_MIN", "UINT64_MAX", "strtoll", "strtoull"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1


def _magnitude(digits: str | bytes, limit: int) -> int:
    """The value of a run of ASCII digits, or `limit` + 1 when it has more digits than `limit`."""
    digits = digits.lstrip(b"0") if isinstance(digits, bytes) else digits.lstrip("0")
    if len(digits) > len(str(limit)):
        return limit + 1
    return int(digits) if digits else 0


def strtoll(text: str | bytes) -> int:
    """An optional `+`/`-` and digits (as a regex or scanner found them) → int64, clamped."""
    negative = text[:1] in ("-", b"-")
    digits = text[1:] if text[:1] in ("-", "+", b"-", b"+") else text
    value = _magnitude(digits, INT64_MAX + 1)
    return max(INT64_MIN, -value) if negative else min(INT64_MAX, value)


def strtoull(digits: str | bytes) -> int:
    """Digits → uint64, clamped to UINT64_MAX (strtoull's ERANGE result)."""
    return min(UINT64_MAX, _magnitude(digits, UINT64_MAX))
