"""rtpvault.cli.search.out: table within the terminal width, JSON, CSV, vertical."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rtpvault.cli.search.out import render, render_csv, render_json, render_table, render_vertical

ROW: dict[str, Any] = {
    "id": "3f1c0c1e-aaaa-bbbb-cccc-000000000001",
    "started": 1764028800.0,
    "ended": 1764028862.0,
    "duration": 62.0,
    "call_id": "a84b4c76e66710@pc33.example.com-with-a-rather-long-tail",
    "caller": "alice",
    "callee": "bob",
    "status": "complete",
    "codecs": ["PCMU", "telephone-event"],
    "worst_loss": 0.25,
    "worst_jitter": 1.234,
    "min_mos": 4.4,
    "size": 123456,
    "node": "relay-1",
    "hold": False,
}


def test_wide_table_shows_everything() -> None:
    out = render_table([ROW], width=400, tz=UTC)
    header, line = out.splitlines()
    for h in ("ID", "STARTED", "DUR", "CALL-ID", "CALLER", "MOS", "SIZE", "NODE"):
        assert h in header
    assert "3f1c0c1e " in line and "2025-11-25 00:00:00" in line and "1:02" in line
    assert ROW["call_id"] in line and "4.40" in line and "120.6K" in line


def test_narrow_table_fits_and_keeps_the_essentials() -> None:
    out = render_table([ROW, {**ROW, "caller": None}], width=80, tz=UTC)
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    assert "ID" in lines[0] and "STARTED" in lines[0] and "CALL-ID" in lines[0]
    assert "…" in lines[1]  # the call-id was cut, not wrapped
    assert "SIZE" not in lines[0]  # low-priority column dropped


@given(st.integers(40, 300), st.text(min_size=0, max_size=120))
def test_table_never_wider_than_needed_or_given(width: int, call_id: str) -> None:
    call_id = call_id.replace("\n", " ")
    out = render_table([{**ROW, "call_id": call_id}], width=width, tz=UTC)
    essentials = 8 + 2 + 19 + 2 + 8  # id, started, shortest call-id
    assert all(len(line) <= max(width, essentials) for line in out.splitlines())


def test_json_is_full_and_parseable() -> None:
    data = json.loads(render_json([ROW]))
    assert data[0]["call_id"] == ROW["call_id"] and data[0]["codecs"] == ROW["codecs"]
    assert data[0]["started_iso"] == "2025-11-25T00:00:00+00:00"


def test_csv_round_trips() -> None:
    text = render_csv([ROW], list(ROW))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["call_id"] == ROW["call_id"] and rows[0]["codecs"] == "PCMU,telephone-event"
    assert rows[0]["started"] == "1764028800.0"


def test_vertical_has_one_field_per_line() -> None:
    out = render_vertical([ROW, ROW], tz=UTC)
    assert out.count("-[ RECORD") == 2
    lines = out.splitlines()
    assert any(re.fullmatch(rf"call_id +\| {re.escape(ROW['call_id'])}", x) for x in lines)
    assert any(re.fullmatch(rf"id +\| {ROW['id']}", x) for x in lines)  # ids in full here
    assert len({x.index("|") for x in lines if "|" in x}) == 1  # one aligned column


def test_empty_results() -> None:
    assert json.loads(render("json", [], 80)) == []
    assert render("csv", [], 80).startswith("id,started")
    assert render("vertical", [], 80) == ""
    assert "CALL-ID" in render("table", [], 80)


def test_plural() -> None:
    from rtpvault.cli.search.out import plural

    assert [plural(n, "recording") for n in (0, 1, 2)] == ["0 recordings", "1 recording",
                                                           "2 recordings"]  # fmt: skip
    assert [plural(n, "copy", "copies") for n in (1, 3)] == ["1 copy", "3 copies"]


def test_vertical_writes_dict_values_as_json() -> None:
    out = render_vertical([{"action": "search", "details": {"results": 1, "filter": {}}}])
    assert out.splitlines()[-1] == 'details | {"filter": {}, "results": 1}'


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=64),
       st.integers(min_value=1, max_value=50))  # fmt: skip
def test_verify_digest_matches_the_uploaders_composite(data: bytes, part: int, chunk: int) -> None:
    import tempfile

    from rtpvault.cli.search.verify import _Digest
    from storage.s3.objects import digests

    d = _Digest(part)
    for i in range(0, len(data), chunk):
        d.update(data[i : i + chunk])
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        want = digests(f.name, part)
    assert d.whole.hexdigest() == want.sha256
    if data:
        assert d.composite() == f"{want.expected(True)}-{len(want.parts)}"
