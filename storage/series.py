"""The file parts of one recording (issue 20): a call restored from Redis goes on recording
into part n+1, each part its own row linked by `series_id` (the first part's id) and `part`.
Query builders and small rules; the callers run them (docs/storage.md "Parts").
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from storage.models import Recording

__all__ = ["series_key", "in_series", "parts_query", "missing_parts", "held_part"]


def series_key(rec: Recording) -> str:
    """The series `rec` belongs to (its own id for a recording in one part)."""
    return rec.series_id or rec.id


def in_series(series: str) -> ColumnElement[bool]:
    """Rows of the series `series`: linked to it, or its first part itself (a row indexed
    before the link existed has no `series_id`). Both sides are index lookups."""
    return or_(Recording.series_id == series, Recording.id == series)


def parts_query(series: str) -> Select[Recording]:
    """Every indexed part of a series, in part order."""
    return select(Recording).where(in_series(series)).order_by(Recording.part, Recording.started)


def missing_parts(numbers: list[int]) -> list[int]:
    """The part numbers below the highest one that are not indexed (a part whose node has not
    yet recovered or reported it, or a row purged by hand)."""
    have = set(numbers)
    return [n for n in range(1, max(have, default=0)) if n not in have]


def held_part(session: Session, series: str, but: str) -> Recording | None:
    """A part of `series` other than `but` that is on legal hold (a new part inherits it)."""
    q = select(Recording).where(in_series(series), Recording.id != but,
                                Recording.legal_hold == True)  # noqa: E712 - SQL  # fmt: skip
    return session.scalars(q.limit(1)).first()
