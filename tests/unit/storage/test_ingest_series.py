"""storage.ingest and storage.series for a recording in parts (issue 20), SQLite and PostgreSQL:
the link from the sidecar, values that cannot be a link, and a hold a new part inherits."""

from __future__ import annotations

from typing import Any

import pytest

from storage.db import Index
from storage.ingest import upsert_sidecar
from storage.series import missing_parts, parts_query
from tests.support.db import index, index_url, recording  # noqa: F401 - fixtures

ONE = "11111111-1111-4111-8111-111111111111"
TWO = "22222222-2222-4222-8222-222222222222"


def doc(rid: str, **over: Any) -> dict[str, Any]:
    return {"id": rid, "call_id": "c@h", "status": "complete", "started": 1.0, "path": "/x",
            **over}  # fmt: skip


@pytest.mark.parametrize(("series", "part", "want"), [
    (ONE, 2, (ONE, 2)), (None, None, (TWO, 1)), ("", 3, (TWO, 3)), ("x" * 37, 2, (TWO, 2)),
    (7, True, (TWO, 1)), (ONE, 0, (ONE, 1)), (ONE, 2**31, (ONE, 1)), (ONE, "2", (ONE, 1)),
])  # fmt: skip
def test_link_from_the_sidecar(index: Index, series: Any, part: Any,  # noqa: F811
                               want: tuple[str, int]) -> None:  # fmt: skip
    with index.session() as s:
        upsert_sidecar(s, doc(TWO, series=series, part=part))
    with index.session() as s:
        row = recording(s, TWO)
        assert (row.series_id, row.part) == want


def test_parts_in_order_and_a_late_part_inherits_the_hold(index: Index) -> None:  # noqa: F811
    with index.session() as s:  # part 2 first: its node reported before part 1's came back
        upsert_sidecar(s, doc(TWO, series=ONE, part=2, started=5.0))
    with index.session() as s:
        row = recording(s, TWO)
        row.legal_hold, row.hold_reason = True, "case 9"
    with index.session() as s:
        upsert_sidecar(s, doc(ONE, started=1.0))  # part 1, recovered later, no `series` key
    with index.session() as s:
        parts = [(r.id, r.part, r.legal_hold, r.hold_reason) for r in s.scalars(parts_query(ONE))]
    assert parts == [(ONE, 1, True, "case 9"), (TWO, 2, True, "case 9")]


def test_missing_parts() -> None:
    assert missing_parts([]) == [] and missing_parts([1]) == [] and missing_parts([2]) == [1]
    assert missing_parts([1, 4, 2]) == [3]
