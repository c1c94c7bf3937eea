"""Caller/callee globs give the same rows on SQLite and PostgreSQL (case, %, _, \\, [)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from storage.db import Index
from storage.models import Recording
from storage.search import SearchFilter, build_query, glob_condition
from tests.unit.search.test_query import reference

pytestmark = pytest.mark.integration

VALUES = ["alice", "Alice", "al%ce", "al_ce", "a\\b", "[x]", "ali", "alicia", "+4930111",
          "+4930", "é@x", ""]  # fmt: skip
PATTERNS = ["al*", "Al*", "al?ce", "al%ce", "al_ce", "a\\*", "[x]", "[*", "*ce", "+4930*",
            "+4930?11", "*", "?", "é*", "ALICE"]  # fmt: skip


def test_globs(index: Index) -> None:
    with index.session() as s:
        s.execute(insert(Recording), [
            {"id": f"{i:036d}", "call_id": f"c{i}", "caller": v, "callee": v, "node": "",
             "started": float(i), "status": "complete", "format": "pcap", "path": "", "tags": [],
             "meta": {}, "sidecar": {}, "codecs": "", "packets": 0, "archive_state": "local",
             "local_removed": False, "legal_hold": False, "updated": 0.0}
            for i, v in enumerate(VALUES)])  # fmt: skip
    with index.session() as s:
        for pattern in PATTERNS:
            got: list[str] = sorted(s.scalars(select(Recording.caller).where(
                glob_condition(Recording.caller, pattern))))  # fmt: skip
            assert got == sorted(v for v in VALUES if reference(pattern, v)), pattern
            both = list(s.scalars(build_query(SearchFilter(party=pattern, limit=None))))
            assert len(both) == len(got)
