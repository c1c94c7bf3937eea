"""`rtpvault search` filters and output formats on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import os
import pwd
from datetime import UTC, datetime

import pytest

from .conftest import Lab

pytestmark = pytest.mark.integration


@pytest.fixture
def calls(lab: Lab) -> Lab:
    now = datetime.now(UTC).timestamp()
    lab.add(
        "c1@pbx1",
        started=now - 600,
        caller="+4930111",
        callee="+4440222",
        node="relay-1",
        meta={"from": "+4930111", "to": "+4440222", "dept": "sales"},
    )
    lab.add(
        "c2@pbx1",
        started=now - 7200,
        caller="+4930999",
        callee="alice",
        seconds=3.0,
        loss=7.5,
        jitter=40.0,
        mos=2.9,
        node="relay-2",
        ip="10.1.2.3",
        meta={"from": "+4930999", "to": "alice", "dept": "support"},
    )
    lab.add(
        "c3@pbx2",
        started=now - 3 * 86400,
        caller="bob",
        callee="+4930111",
        pt=8,
        status="interrupted",
    )
    lab.add(
        "d4@pbx2",
        started=now - 100 * 86400,
        caller="Bob",
        callee="carol",
        seconds=0.5,
        status="failed",
        mos=None,
    )
    lab.add("c5%_x@pbx3", started=now - 30, caller="a%b_c", callee="x*y", fmt="pcapng")
    return lab


def ids(lab: Lab, *args: str) -> list[str]:
    return [r["call_id"] for r in lab.json("search", *args)]


def test_filters(calls: Lab) -> None:
    lab = calls
    assert ids(lab) == ["c5%_x@pbx3", "c1@pbx1", "c2@pbx1", "c3@pbx2", "d4@pbx2"]  # newest first
    assert ids(lab, "--since", "2h") == ["c5%_x@pbx3", "c1@pbx1"]
    assert ids(lab, "--since", "3h", "--until", "1h") == ["c2@pbx1"]
    iso = datetime.fromtimestamp(datetime.now(UTC).timestamp() - 4 * 86400, UTC).isoformat()
    assert ids(lab, "--since", iso, "--until", "1d") == ["c3@pbx2"]
    assert ids(lab, "--call-id", "c1@pbx1") == ["c1@pbx1"]
    assert ids(lab, "--call-id", "c1") == []  # exact unless it ends with *
    assert ids(lab, "--call-id", "c*") == ["c5%_x@pbx3", "c1@pbx1", "c2@pbx1", "c3@pbx2"]
    assert ids(lab, "--call-id", "c5%_*") == ["c5%_x@pbx3"]  # % and _ are not wildcards
    assert ids(lab, "--caller", "+4930*") == ["c1@pbx1", "c2@pbx1"]
    assert ids(lab, "--caller", "bob") == ["c3@pbx2"]  # case-sensitive on both databases
    assert ids(lab, "--caller", "?ob") == ["c3@pbx2", "d4@pbx2"]
    assert ids(lab, "--caller", "a%b_c") == ["c5%_x@pbx3"]
    assert ids(lab, "--caller", "a_b%c") == []
    assert ids(lab, "--callee", "*ice") == ["c2@pbx1"]
    assert ids(lab, "--callee", "x*y") == ["c5%_x@pbx3"]
    assert ids(lab, "--party", "+4930111") == ["c1@pbx1", "c3@pbx2"]
    assert ids(lab, "--ip", "10.1.2.3") == ["c2@pbx1"]
    assert ids(lab, "--codec", "pcma") == ["c3@pbx2"]
    assert ids(lab, "--min-duration", "2s") == ["c2@pbx1"]
    assert ids(lab, "--max-duration", "0.8") == ["d4@pbx2"]
    assert ids(lab, "--status", "interrupted,failed") == ["c3@pbx2", "d4@pbx2"]
    assert ids(lab, "--status", "failed", "--status", "interrupted") == ["c3@pbx2", "d4@pbx2"]
    assert ids(lab, "--node", "relay-2") == ["c2@pbx1"]
    assert ids(lab, "--min-loss", "5") == ["c2@pbx1"]
    assert "c2@pbx1" not in ids(lab, "--max-loss", "1")
    assert ids(lab, "--min-jitter", "10") == ["c2@pbx1"]
    assert "c2@pbx1" not in ids(lab, "--max-jitter", "10")
    assert "c2@pbx1" not in ids(lab, "--min-mos", "3.5") and "c1@pbx1" in ids(
        lab, "--min-mos", "3.5"
    )
    assert ids(lab, "--max-mos", "3") == ["c2@pbx1"]
    assert ids(lab, "--meta", "dept=support") == ["c2@pbx1"]
    assert ids(lab, "--meta", "dept=sales", "--meta", "to=+4440222") == ["c1@pbx1"]
    assert ids(lab, "--meta", "dept=sales", "--meta", "to=nobody") == []
    assert ids(lab, "--limit", "2") == ["c5%_x@pbx3", "c1@pbx1"]
    assert ids(lab, "--sort", "duration", "--limit", "1") == ["d4@pbx2"]
    # ties broken by the second key; NULL MOS last on both databases
    assert ids(lab, "--sort", "-mos,call_id") == [
        "c1@pbx1",
        "c3@pbx2",
        "c5%_x@pbx3",
        "c2@pbx1",
        "d4@pbx2",
    ]
    assert ids(lab, "--sort", "mos")[-1] == "d4@pbx2"


def test_sort_orders(calls: Lab) -> None:
    by_caller = ids(calls, "--sort", "caller")
    callers = {d["call_id"]: d["caller"] for d in calls.docs.values()}
    assert [callers[c] for c in by_caller] == sorted(callers.values())  # byte order
    assert by_caller == ["c1@pbx1", "c2@pbx1", "d4@pbx2", "c5%_x@pbx3", "c3@pbx2"]
    by_dur = ids(calls, "--sort", "-duration")
    assert by_dur[0] == "c2@pbx1" and by_dur[-1] == "d4@pbx2"


def test_output_formats(calls: Lab) -> None:
    table = calls.cli("search", "--limit", "3")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "STARTED", "DUR", "CALL-ID"] and len(lines) == 4
    assert all(len(x) <= 200 for x in lines)
    r = calls.cli("search", "--csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {x["call_id"] for x in rows} == set(calls.docs) and "sha256" in rows[0]
    v = calls.cli("search", "--vertical", "--call-id", "c1@pbx1")
    assert "-[ RECORD 1 ]" in v.stdout and f"| {calls.docs['c1@pbx1']['id']}" in v.stdout
    data = calls.json("search", "--call-id", "c2@pbx1")[0]
    assert data["worst_loss"] == 7.5 and data["min_mos"] == 2.9 and data["codecs"] == ["PCMU"]


def test_narrow_terminal(calls: Lab) -> None:
    from click.testing import CliRunner

    from rtpvault.cli import cli

    r = CliRunner().invoke(cli, ["search", "--config-file", str(calls.conf)],
                           env={"COLUMNS": "70"})  # fmt: skip
    assert r.exit_code == 0 and all(len(x) <= 70 for x in r.stdout.splitlines()), r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "soon"], "bad time 'soon'"),
        (["--min-duration", "forever"], "bad duration 'forever'"),
        (["--sort", "colour"], "bad sort key 'colour'"),
        (["--meta", "novalue"], "bad --meta 'novalue'"),
    ],
)
def test_bad_filter_values(lab: Lab, args: list[str], message: str) -> None:
    r = lab.cli("search", *args)
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output


def test_search_is_audited(calls: Lab) -> None:
    calls.cli("search", "--caller", "bob")
    entries = calls.json("audit", "--action", "search")
    assert entries[0]["details"]["filter"] == {"caller": "bob"}
    assert entries[0]["details"]["results"] == 1
    assert entries[0]["user"] == pwd.getpwuid(os.getuid()).pw_name
