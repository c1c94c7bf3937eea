"""Rendering search results: a table sized to the terminal, JSON, CSV, or one field per line.

Pure: rows are plain dicts (column key → value), widths and time zones come in as arguments.
JSON and CSV keep full values (times as ISO 8601 UTC and Unix seconds); the table and the
vertical form are for people (local time, durations as m:ss, long values cut with "…").
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

__all__ = ["Column", "COLUMNS", "render", "render_table", "render_json", "render_csv",
           "render_vertical", "human", "plural", "FORMATS"]  # fmt: skip

FORMATS = ("table", "json", "csv", "vertical")
ELLIPSIS = "…"


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 recording`, `2 recordings`, `0 copies` (pass the plural when it is not word + s)."""
    return f"{n} {word if n == 1 else words or word + 's'}"


def _time(v: Any, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(float(v), tz or UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _duration(v: Any, tz: tzinfo | None) -> str:
    s = int(round(float(v)))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _size(v: Any, tz: tzinfo | None) -> str:
    n = float(v)
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(v)  # pragma: no cover


def _float(digits: int) -> Callable[[Any, tzinfo | None], str]:
    return lambda v, tz: f"{float(v):.{digits}f}"


def _list(v: Any, tz: tzinfo | None) -> str:
    return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: key in the row, header, shown-first priority (0 = never dropped), whether
    it may be cut to fit, and how a value is written for people."""

    key: str
    header: str
    priority: int
    cut: bool = False
    fmt: Callable[[Any, tzinfo | None], str] | None = None
    right: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("id", "ID", 0, cut=False, fmt=lambda v, tz: str(v)[:8]),
    Column("started", "STARTED", 0, fmt=_time),
    Column("duration", "DUR", 1, fmt=_duration, right=True),
    Column("call_id", "CALL-ID", 0, cut=True),
    Column("caller", "CALLER", 1, cut=True),
    Column("callee", "CALLEE", 1, cut=True),
    Column("status", "STATUS", 2),
    Column("codecs", "CODECS", 4, fmt=_list),
    Column("worst_loss", "LOSS%", 3, fmt=_float(1), right=True),
    Column("worst_jitter", "JIT", 5, fmt=_float(1), right=True),
    Column("min_mos", "MOS", 3, fmt=_float(2), right=True),
    Column("size", "SIZE", 6, fmt=_size, right=True),
    Column("node", "NODE", 5, cut=True),
    Column("hold", "HOLD", 4, fmt=lambda v, tz: "held" if v else ""),
    # which file part of its call's recording (storage.series); blank for a first part
    Column("part", "PART", 7, fmt=lambda v, tz: str(v) if v and int(v) > 1 else ""),
)


# fields that only the vertical form and `show` print
DETAIL_COLUMNS: tuple[Column, ...] = (
    Column("ended", "ENDED", 9, fmt=_time),
    Column("retain_until", "RETAIN-UNTIL", 9, fmt=_time),
    Column("meta", "META", 9, fmt=lambda v, tz: json.dumps(v, ensure_ascii=False)),
    Column("tags", "TAGS", 9, fmt=_list),
)


def human(col: Column, value: Any, tz: tzinfo | None) -> str:
    if value is None or value == "":
        return "-" if col.fmt is not None or value is None else ""
    return col.fmt(value, tz) if col.fmt else str(value)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def render_table(
    rows: Sequence[Mapping[str, Any]], width: int, tz: tzinfo | None = None,
    columns: Sequence[Column] = COLUMNS,
) -> str:  # fmt: skip
    """Aligned columns within `width` characters: low-priority columns go first, then the
    cuttable ones shrink (never below 8 characters)."""
    cols = [c for c in columns if any(c.key in r for r in rows) or not rows]
    cells = {c.key: [human(c, r.get(c.key), tz) for r in rows] for c in cols}
    widths = {c.key: max([len(c.header), *map(len, cells[c.key])]) for c in cols}

    def total() -> int:
        return sum(widths[c.key] for c in cols) + 2 * (len(cols) - 1)

    while total() > width and any(c.priority > 0 for c in cols):
        worst = max((c for c in cols if c.priority > 0), key=lambda c: c.priority)
        if worst.cut and widths[worst.key] > 8 and worst.priority <= 1:
            break
        cols.remove(worst)
    for c in sorted((c for c in cols if c.cut), key=lambda c: -widths[c.key]):
        excess = total() - width
        if excess <= 0:
            break
        widths[c.key] = max(8, len(c.header), widths[c.key] - excess)
    lines = []
    for i in range(-1, len(rows)):
        parts = []
        for c in cols:
            text = _cut(c.header if i < 0 else cells[c.key][i], widths[c.key])
            parts.append(text.rjust(widths[c.key]) if c.right else text.ljust(widths[c.key]))
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def render_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """A JSON array of the rows (all keys, Unix times plus `*_iso` UTC copies)."""
    out = []
    for r in rows:
        d = {k: _plain(v) for k, v in r.items()}
        for k in ("started", "ended"):
            if isinstance(d.get(k), (int, float)):
                d[f"{k}_iso"] = datetime.fromtimestamp(d[k], UTC).isoformat()
        out.append(d)
    return json.dumps(out, indent=2, sort_keys=False, default=str)


def render_csv(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> str:
    """RFC 4180 CSV with a header line; lists joined with ',' inside their cell."""
    f = io.StringIO()
    w = csv.writer(f, lineterminator="\n")
    w.writerow(keys)
    for r in rows:
        w.writerow(["" if r.get(k) is None else _list(r[k], None) for k in keys])
    return f.getvalue().rstrip("\n")


def render_vertical(
    rows: Sequence[Mapping[str, Any]], tz: tzinfo | None = None,
    columns: Sequence[Column] = COLUMNS,
) -> str:  # fmt: skip
    """One `key: value` line per field, rows separated by a numbered rule (like psql \\x)."""
    by_key = {c.key: c for c in (*DETAIL_COLUMNS, *columns)}
    out = []
    for n, r in enumerate(rows, 1):
        out.append(f"-[ RECORD {n} ]" + "-" * 20)
        keys = list(r)
        pad = max(map(len, keys), default=0)
        for k in keys:
            col = by_key.get(k)
            if col is None and isinstance(r[k], dict):  # audit details: JSON, as --json
                value = json.dumps(r[k], sort_keys=True, ensure_ascii=False)
            else:
                value = human(col, r[k], tz) if col else (
                    "-" if r[k] is None else _list(r[k], tz))  # fmt: skip
            if col and col.key == "id":
                value = str(r[k])
            out.append(f"{k.ljust(pad)} | {value}")
    return "\n".join(out)


def render(
    fmt: str, rows: Sequence[Mapping[str, Any]], width: int, tz: tzinfo | None = None
) -> str:
    """Dispatch on the output format name (one of FORMATS)."""
    if fmt == "json":
        return render_json(rows)
    if fmt == "csv":
        return render_csv(rows, list(rows[0]) if rows else [c.key for c in COLUMNS])
    if fmt == "vertical":
        return render_vertical(rows, tz)
    return render_table(rows, width, tz)
