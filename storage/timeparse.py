"""Times and durations as an operator types them on the command line.

Points in time (`--since`, `--until`): ISO 8601 dates and date-times (`2026-11-24`,
`2026-11-24T10:00`, `2026-11-24 10:00:05+01:00`, trailing `Z`), relative ages counted back from
now (`90s`, `15m`, `2h`, `3d`, `1w`, combinations such as `1h30m`), `now`, `today`, `yesterday`,
and raw Unix seconds (`@1764028800`). A time without a zone is local time, as `date` prints it.

Durations (`--older-than`, `--min-duration`): `90d`, `2h`, `1h30m`, `45s` or plain seconds (`45`,
`2.5`).

Pure: the caller passes `now` (an aware datetime); results are Unix seconds (float).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo

__all__ = ["TimeParseError", "parse_time", "parse_duration", "UNITS"]

UNITS: dict[str, float] = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_FORMS = "ISO 8601 (2026-11-24, 2026-11-24T10:00[:00][+01:00|Z]), a relative age (2h, 3d, 1h30m), "
_FORMS += "now, today, yesterday or @UNIXSECONDS"


class TimeParseError(ValueError):
    """The text is not a time or duration in any accepted form; the message says which forms are."""


def parse_duration(text: str) -> float:
    """`1h30m` → 5400.0; plain numbers are seconds. Negative or empty input is rejected."""
    t = text.strip().lower().replace(" ", "")
    if _NUMBER.fullmatch(t):
        return float(t)
    if not _DURATION.fullmatch(t):
        raise TimeParseError(
            f"bad duration {text!r}: expected seconds (45) or a number with a unit s, m, h, d, w "
            f"(90d, 2h, 1h30m)"
        )
    return sum(float(n) * UNITS[u] for n, u in _PART.findall(t))


def _midnight(now: datetime, tz: tzinfo | None) -> datetime:
    local = now.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def parse_time(text: str, now: datetime, tz: tzinfo | None = None) -> float:
    """Unix seconds of `text`. `now` must be timezone-aware; `tz` is the zone of times written
    without one (None = the machine's local zone)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    t = text.strip()
    low = t.lower()
    if not t:
        raise TimeParseError(f"empty time: expected {_FORMS}")
    if low == "now":
        return now.timestamp()
    if low == "today":
        return _midnight(now, tz).timestamp()
    if low == "yesterday":
        return (_midnight(now, tz) - timedelta(days=1)).timestamp()
    if low.startswith("@"):
        try:
            return float(low[1:])
        except ValueError:
            raise TimeParseError(
                f"bad time {text!r}: expected @ followed by Unix seconds"
            ) from None
    compact = low.replace(" ", "")
    if compact.endswith("ago"):
        compact = compact[:-3]
    if _DURATION.fullmatch(compact):
        return now.timestamp() - parse_duration(compact)
    iso = t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        raise TimeParseError(f"bad time {text!r}: expected {_FORMS}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz) if tz is not None else when.astimezone()
    return when.timestamp()
