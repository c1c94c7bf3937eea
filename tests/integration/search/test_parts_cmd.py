"""A recording in two file parts (a call restored from Redis went on recording, issue 20):
ingest links them, `search` lists every part, `show` of either part lists both, `fetch` of the
Call-ID copies both, `export` asks for a part, `verify` and `show` name a missing part, a hold
covers the whole series and purge takes a series only as a whole. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from storage.ingest import upsert_sidecar
from storage.models import Recording

from .conftest import NOW, Lab

pytestmark = pytest.mark.integration

CALL = "restored@pbx"


def two_parts(lab: Lab, *, second_started: float = NOW - 3000) -> tuple[dict[str, Any], ...]:
    """Part 1 (interrupted: the killed daemon's) and part 2 (complete: the restored call's)."""
    first = lab.add(CALL, started=NOW - 3600, status="interrupted")
    second = lab.add(CALL, started=second_started, extra={"series": first["id"], "part": 2})
    return first, second


def test_search_lists_every_part_linked(lab: Lab) -> None:
    first, second = two_parts(lab)
    lab.add("other@pbx")
    rows = lab.json("search", "--call-id", CALL)
    assert sorted((r["part"], r["id"], r["series"]) for r in rows) == [
        (1, first["id"], first["id"]), (2, second["id"], first["id"])]  # fmt: skip
    table = lab.cli("search", "--call-id", CALL)
    assert table.exit_code == 0, table.output
    assert "PART" in table.stdout.splitlines()[0]
    with lab.index.session() as s:
        rows_db = {r.id: (r.series_id, r.part) for r in s.query(Recording)}
    assert rows_db[first["id"]] == (first["id"], 1)
    assert rows_db[second["id"]] == (first["id"], 2)


@pytest.mark.parametrize("which", ["call-id", "part1", "part2"])
def test_show_of_any_part_lists_both(lab: Lab, which: str) -> None:
    first, second = two_parts(lab)
    ref = {"call-id": CALL, "part1": first["id"], "part2": second["id"]}[which]
    doc = lab.json("show", ref)
    assert doc["recording"]["id"] == (second["id"] if which == "part2" else first["id"])
    series = doc["series"]
    assert series["series"] == first["id"] and series["missing"] == []
    assert [(p["part"], p["id"], p["status"], p["path"]) for p in series["parts"]] == [
        (1, first["id"], "interrupted", first["path"]),
        (2, second["id"], "complete", second["path"])]  # fmt: skip
    text = lab.cli("show", ref)
    assert text.exit_code == 0, text.output
    assert f"Parts (recording {first['id']}):" in text.stdout
    assert first["path"] in text.stdout and second["path"] in text.stdout


def test_fetch_copies_every_part_and_export_asks_for_one(lab: Lab, tmp_path: Path) -> None:
    first, second = two_parts(lab)
    out = tmp_path / "out"
    r = lab.cli("fetch", CALL, "-o", str(out))
    assert r.exit_code == 0, r.output
    for doc in (first, second):
        assert (out / Path(doc["path"]).name).read_bytes() == Path(doc["path"]).read_bytes()
    r = lab.cli("export", CALL, "--wav", "-o", str(tmp_path / "x.wav"))
    assert r.exit_code != 0
    assert "is one recording in 2 parts" in r.output and second["id"][:13] in r.output
    r = lab.cli("export", second["id"], "--wav", "-o", str(tmp_path / "x.wav"))
    assert r.exit_code == 0, r.output


def test_verify_and_show_name_a_missing_part(lab: Lab) -> None:
    first, second = two_parts(lab)
    ok = lab.cli("verify", "--call-id", CALL)
    assert ok.exit_code == 0, ok.output
    assert "verified 2 recordings" in ok.stdout
    with lab.index.session() as s:  # part 1's node never reported it (or a row was dropped)
        s.execute(delete(Recording).where(Recording.id == first["id"]))
    bad = lab.cli("verify", "--call-id", CALL)
    assert bad.exit_code == 1
    assert f"MISSING {first['id']} ({CALL}) part 1 of 2: not in the index" in bad.stdout
    doc = lab.json("show", second["id"])
    assert doc["series"]["missing"] == [1]
    assert "MISSING (not in the index)" in lab.cli("show", second["id"]).stdout


def test_hold_on_one_part_holds_the_series_and_new_parts(lab: Lab) -> None:
    first = lab.add(CALL, started=NOW - 3600, status="interrupted")
    r = lab.cli("hold", first["id"], "--reason", "case 7")
    assert r.exit_code == 0, r.output
    # part 2 indexed after the hold (its node restored the call; its first sidecar)
    second = lab.add(CALL, started=NOW - 3000, extra={"series": first["id"], "part": 2})
    with lab.index.session() as s:  # and again when it ends: the hold stays
        upsert_sidecar(s, {**second, "status": "complete"})
    with lab.index.session() as s:
        held = {r.id: (r.legal_hold, r.hold_reason) for r in s.query(Recording)}
    assert held == {first["id"]: (True, "case 7"), second["id"]: (True, "case 7")}
    r = lab.cli("release", CALL)
    assert r.exit_code == 0, r.output
    assert r.stdout.count("released") == 2
    with lab.index.session() as s:
        assert not any(r.legal_hold for r in s.query(Recording))
    r = lab.cli("hold", second["id"], "--reason", "case 8")
    assert r.exit_code == 0, r.output
    with lab.index.session() as s:
        assert all(r.legal_hold and r.hold_reason == "case 8" for r in s.query(Recording))


def test_purge_takes_a_series_only_as_a_whole(lab: Lab) -> None:
    import time

    now = time.time()
    day = 86400.0
    first = lab.add(CALL, started=now - 100 * day, status="interrupted")
    second = lab.add(CALL, started=now - 80 * day,  # part 2 not yet 90 days old
                     extra={"series": first["id"], "part": 2})  # fmt: skip
    r = lab.cli("purge", "--older-than", "90d", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "would purge 0 recordings" in r.stdout
    assert "1 with another part of the call kept" in r.stdout
    r = lab.cli("purge", "--older-than", "70d")
    assert r.exit_code == 0, r.output
    assert "purged 2 recordings" in r.stdout
    assert not Path(first["path"]).exists() and not Path(second["path"]).exists()


def test_a_call_id_of_many_parts_or_of_two_recordings(lab: Lab) -> None:
    first = lab.add(CALL, started=NOW - 3600)
    for n in range(2, 8):  # seven parts: more than one look-up shows
        lab.add(CALL, started=NOW - 3600 + n, extra={"series": first["id"], "part": n})
    doc = lab.json("show", CALL)
    assert doc["recording"]["id"] == first["id"]
    assert [p["part"] for p in doc["series"]["parts"]] == list(range(1, 8))
    other = lab.add(CALL, started=NOW - 60)  # the Call-ID used again by another call
    r = lab.cli("show", CALL)
    assert r.exit_code != 0 and "matches more than 5 recordings" in r.output, r.output
    assert lab.json("show", other["id"])["series"]["parts"][0]["id"] == other["id"]
