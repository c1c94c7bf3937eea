"""Migration 0002 (recording parts, issue 20) on SQLite and PostgreSQL: rows indexed before it
become part 1 of their own series; the index it adds serves a series lookup; down and up again."""

from __future__ import annotations

from sqlalchemy import inspect, text

from storage.db import make_engine, upgrade
from tests.support.db import index_url  # noqa: F401 - fixture

from .test_migrations import downgrade

ROW = ("INSERT INTO recordings (id, call_id, tags, node, started, status, format, path, codecs, "
       "meta, packets, archive_state, local_removed, legal_hold, sidecar, updated) VALUES "
       "(:id, 'c@h', '[]', '', 0, 'complete', 'pcap', '', '', '{}', 0, 'local', false, false, "
       "'{}', 0)")  # fmt: skip


def test_old_rows_become_part_one_of_their_own_series(index_url: str) -> None:  # noqa: F811
    upgrade(index_url, "0001")
    engine = make_engine(index_url)
    with engine.begin() as conn:
        conn.execute(text(ROW), [{"id": "r1"}, {"id": "r2"}])
    upgrade(index_url)
    with engine.begin() as conn:
        got = conn.execute(text("SELECT id, series_id, part FROM recordings ORDER BY id")).all()
        assert [tuple(r) for r in got] == [("r1", "r1", 1), ("r2", "r2", 1)]
        conn.execute(text(ROW), [{"id": "r3"}])  # a writer that does not know the columns
        assert conn.execute(text("SELECT part FROM recordings WHERE id = 'r3'")).scalar() == 1
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("recordings")}
    assert indexes["ix_recordings_series_id_part"] == ["series_id", "part"]
    engine.dispose()
    downgrade(index_url, "0001")
    engine = make_engine(index_url)
    cols = {c["name"] for c in inspect(engine).get_columns("recordings")}
    engine.dispose()
    assert "series_id" not in cols and "part" not in cols
    upgrade(index_url)
