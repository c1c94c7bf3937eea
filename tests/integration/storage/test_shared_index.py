"""One index (SQLite, PostgreSQL) written by several processes at once (the `num-threads`
workers of one daemon, issue 18 item 4): they create it together on their first start, then
each one's index writer (rtpvault.archive) writes its recordings while the others write theirs,
and the same finished recordings too (what two processes' start-up reconciliations may both
read from the shared sidecars). No row is lost or refused, none is written twice, each
recording has one upload job."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage.db import open_index
from storage.models import Recording, Upload
from tests.support.db import pg_database

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
WRITERS = 3
OWN = 100
SHARED = 100

# One worker's index side: waits for the start signal, opens (creates) the index as the daemon
# does for the embedded default, and hands its writer a start and a finish document per own
# recording, and the finish of every shared one.
WRITER = textwrap.dedent("""
    import json, os, sys, time, uuid
    from rtpvault.archive import ArchiveComponent
    from storage.db import open_index
    from storage.uploader import S3Settings
    url, tag, go, own, shared = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:6])
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    index = open_index(url, create=True)
    arch = ArchiveComponent(index, S3Settings(bucket="b"), "node-x")  # uploader not started
    def doc(rid, call_id, status):
        return {"id": rid, "call_id": call_id, "status": status, "started": 1000.0,
                "ended": None if status == "recording" else 1010.0, "path": f"/s/{rid}.pcap",
                "size": None if status == "recording" else 10, "sha256": None if status ==
                "recording" else "ab" * 32, "streams": []}
    for i in range(max(own, shared)):
        if i < own:
            rid = str(uuid.uuid4())
            arch.on_recording(doc(rid, f"{tag}-{i}", "recording"))
            arch.on_recording(doc(rid, f"{tag}-{i}", "complete"))
        if i < shared:
            rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"shared-{i}"))
            arch.on_recording(doc(rid, f"shared-{i}", "complete"))
        time.sleep(0.001)
    deadline = time.monotonic() + 120  # the writer's queue drained (close() waits 15 s only)
    while arch.stats()["index_pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    arch.close()
    print(json.dumps({"pending": arch.stats()["index_pending"], "rejected": arch.rejected,
                      "db_errors": arch.db_errors}), flush=True)
""")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":  # the embedded default, created by the workers themselves
        yield "sqlite:///" + str(tmp_path / "spool" / "recordings.db")
    else:  # a fresh database: the workers migrate it (in turn: migrations/env.py's lock)
        yield from pg_database()


def test_workers_create_and_write_one_index_together(url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"w{n}", str(go), str(OWN), str(SHARED)],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for n in range(WRITERS)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()  # all at once, as workers forked together
        outs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        stats = json.loads(out.strip().splitlines()[-1])
        assert (stats["pending"], stats["rejected"]) == (0, 0), (stats, err[-3000:])
    index = open_index(url, create=False)
    try:
        with index.session() as s:
            rows = s.execute(select(Recording.call_id, Recording.status)).all()
            uploads = s.execute(
                select(Upload.recording_id, func.count()).group_by(Upload.recording_id)
            ).all()
    finally:
        index.close()
    expected = {f"w{n}-{i}" for n in range(WRITERS) for i in range(OWN)}
    expected |= {f"shared-{i}" for i in range(SHARED)}
    assert sorted(c for c, _ in rows) == sorted(expected)  # each once, none lost
    assert {st for _, st in rows} == {"complete"}
    assert len(uploads) == len(expected) and {n for _, n in uploads} == {1}


# Writes the finish of recording `i` when the file go-<i> appears, one at a time, and says so.
SAME = textwrap.dedent("""
    import json, os, sys, time, uuid
    from rtpvault.archive import ArchiveComponent
    from storage.db import open_index
    from storage.uploader import S3Settings
    url, folder, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    index = open_index(url, create=False)
    arch = ArchiveComponent(index, S3Settings(bucket="b"), "node-x")  # uploader not started
    print("ready", flush=True)
    for i in range(rounds):
        while not os.path.exists(os.path.join(folder, f"go-{i}")):
            time.sleep(0.0005)
        rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"same-{i}"))
        arch.on_recording({"id": rid, "call_id": f"same-{i}", "status": "complete",
                           "started": 1000.0, "ended": 1010.0, "path": f"/s/{rid}.pcap",
                           "size": 10, "sha256": "ab" * 32, "streams": []})
        while arch.stats()["index_pending"]:
            time.sleep(0.0005)
        print("done", i, flush=True)
    arch.close()
    print(json.dumps({"rejected": arch.rejected, "db_errors": arch.db_errors}), flush=True)
""")
ROUNDS = 40


def test_one_recording_written_by_processes_at_the_same_moment(url: str, tmp_path: Path) -> None:
    """Two processes' reconciliations (or one's reconciliation and the other's writer) may
    write the same new recording at the same moment: one insert wins, the other is refused by
    the primary key and must write again as an update, not drop the document."""
    open_index(url, create=True).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", SAME, url, str(tmp_path), str(ROUNDS)],
                         cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(WRITERS)
    ]  # fmt: skip
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for i in range(ROUNDS):
            (tmp_path / f"go-{i}").touch()
            for p in procs:
                assert p.stdout is not None and p.stdout.readline().strip() == f"done {i}"
        # read as the lines before: communicate() would miss what readline() buffered
        finals = [p.stdout.readline() if p.stdout is not None else "" for p in procs]
        errs = [p.communicate(timeout=60)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, final, err in zip(procs, finals, errs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert json.loads(final)["rejected"] == 0, err[-3000:]
    index = open_index(url, create=False)
    try:
        with index.session() as s:
            rows = s.scalars(select(Recording.call_id)).all()
            jobs = s.scalar(select(func.count()).select_from(Upload))
    finally:
        index.close()
    assert sorted(rows) == sorted(f"same-{i}" for i in range(ROUNDS)) and jobs == ROUNDS
