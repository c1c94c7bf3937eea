"""Each typical search filter can be answered from its index, on SQLite and PostgreSQL.

The plans are read with EXPLAIN (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN with sequential
scans disabled, since on an empty table a scan is cheapest: what matters here is that the index
*can* serve the filter — a collation mismatch or an expression on the column would make that
impossible and PostgreSQL would still scan). Speed on 1,000,000 rows is bench/search.py's job.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Select, and_, select, text

from storage.db import Index
from storage.models import Recording, RecordingMeta, Upload

NOW = 1_764_028_800.0

CASES: list[tuple[str, Any, str]] = [
    ("time range", Recording.started.between(NOW - 86400, NOW), "ix_recordings_started"),
    ("caller in a time range",
     and_(Recording.caller == "alice", Recording.started >= NOW - 3600),
     "ix_recordings_caller_started"),
    ("callee prefix", and_(Recording.callee >= "bo", Recording.callee < "bp"),
     "ix_recordings_callee_started"),
    ("call-id prefix", and_(Recording.call_id >= "a84b", Recording.call_id < "a84c"),
     "ix_recordings_call_id"),
    ("loss above", Recording.worst_loss > 5.0, "ix_recordings_worst_loss"),
    ("jitter above", Recording.worst_jitter > 30.0, "ix_recordings_worst_jitter"),
    ("MOS below", Recording.min_mos < 3.5, "ix_recordings_min_mos"),
    ("status in a time range",
     and_(Recording.status == "interrupted", Recording.started >= NOW - 3600),
     "ix_recordings_status_started"),
    ("meta KEY=VALUE",  # the side table drives: its (key, value) index finds the recordings
     Recording.id.in_(select(RecordingMeta.recording_id)
                      .where(RecordingMeta.key == "case", RecordingMeta.value == "42")),
     "ix_recording_meta_key_value"),
]  # fmt: skip


def plan(index: Index, query: Select[Any]) -> str:
    sql = str(query.compile(index.engine, compile_kwargs={"literal_binds": True}))
    with index.engine.connect() as conn:
        if index.dialect == "sqlite":
            rows = conn.execute(text("EXPLAIN QUERY PLAN " + sql)).all()
            return "\n".join(str(r[-1]) for r in rows)
        conn.execute(text("SET enable_seqscan = off"))
        return "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)).all())


@pytest.mark.parametrize(("what", "where", "index_name"), CASES, ids=[c[0] for c in CASES])
def test_search_filter_uses_its_index(index: Index, what: str, where: Any, index_name: str) -> None:
    query = select(Recording.id).where(where)
    got = plan(index, query)
    assert index_name in got, f"{what}: {got}"


def test_due_uploads_are_found_from_the_queue_index(index: Index) -> None:
    query = select(Upload.id).where(Upload.state == "pending", Upload.next_try <= NOW)
    assert "ix_uploads_state_next_try" in plan(index, query)
