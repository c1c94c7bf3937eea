"""The index schema, ingest and audit chain — each test on SQLite and on PostgreSQL."""

from __future__ import annotations

import copy
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from storage.audit import chain as audit
from storage.db import Index, SchemaError, head_revision, make_engine, open_index, upgrade
from storage.ingest import host_of, split_metadata, upsert_sidecar
from storage.models import AuditEntry, Base, RecordingIp, RecordingMeta, StreamRow
from tests.support.db import recording
from tests.support.tools import require

REPO = Path(__file__).resolve().parents[3]


def sidecar(rid: str = "11111111-1111-4111-8111-111111111111", **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "id": rid,
        "node": "relay-1",
        "call_id": "a84b4c76e66710@pc33",
        "tags": ["ft", "tt"],
        "metadata": "from:alice|to:bob|case:42",
        "format": "pcap",
        "link": "eth",
        "path": "/spool/pcaps/x.pcap",
        "started": 1764028800.5,
        "ended": None,
        "status": "recording",
        "reason": None,
        "size": None,
        "sha256": None,
        "parties": [
            {
                "tag": "ft",
                "media": [{"type": "audio", "address": "192.0.2.10", "port": 4000, "codecs": []}],
            }
        ],
        "codecs": ["PCMU"],
        "streams": [],
    }
    doc.update(over)
    return doc


FINISHED: dict[str, Any] = {
    "status": "complete",
    "ended": 1764028860.5,
    "size": 4096,
    "sha256": "ab" * 32,
    "streams": [
        {
            "ssrc": 0xAAAA0001,
            "kind": "rtp",
            "party": "ft",
            "src": "192.0.2.10:4000",
            "dst": "198.51.100.5:30000",
            "codec": "PCMU",
            "payload_types": [0],
            "packets": 1500,
            "bytes": 258000,
            "lost": 3,
            "loss_pct": 0.2,
            "jitter_ms": 1.5,
            "max_jitter_ms": 4.0,
            "mos": 4.3,
            "first": 1764028800.6,
            "last": 1764028860.4,
        },
        {
            "ssrc": 0xBBBB0002,
            "kind": "rtp",
            "party": "tt",
            "src": "[2001:db8::7]:5000",
            "dst": "198.51.100.5:30002",
            "codec": "PCMU",
            "payload_types": [0],
            "packets": 1490,
            "bytes": 256000,
            "lost": 15,
            "loss_pct": 1.0,
            "jitter_ms": 0.5,
            "max_jitter_ms": 2.0,
            "mos": 4.1,
            "first": 1764028800.7,
            "last": 1764028860.3,
        },
    ],
}


def test_migrations_build_exactly_the_models(index_url: str) -> None:
    upgrade(index_url)
    engine = make_engine(index_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_explicit_database_with_old_schema_is_refused(index_url: str) -> None:
    with pytest.raises(SchemaError, match="rtpvault db upgrade"):
        open_index(index_url, create=False)
    upgrade(index_url)
    ix = open_index(index_url, create=False)
    engine = make_engine(index_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()
    engine.dispose()
    ix.close()


def test_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(SchemaError, match="recording-db postgresql"):
        open_index("postgresql+psycopg://nobody:secret@127.0.0.1:1/none", create=False)


def test_sqlite_index_uses_a_rollback_journal_without_mmap(tmp_path: Any) -> None:
    """WAL memory-maps its -shm: a refused write there is a SIGBUS (issue 15 item 4)."""
    ix = open_index(f"sqlite:///{tmp_path}/i.db", create=True)
    with ix.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "delete"
        assert conn.execute(text("PRAGMA mmap_size")).scalar() == 0
    ix.close()
    assert (tmp_path / "i.db").read_bytes()[18:20] == b"\x01\x01"
    assert not (tmp_path / "i.db-shm").exists()


def test_a_file_left_in_wal_mode_is_converted_before_use(tmp_path: Any) -> None:
    db = tmp_path / "i.db"
    open_index(f"sqlite:///{db}", create=True).close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    conn.close()
    assert db.read_bytes()[18:20] == b"\x02\x02"
    ix = open_index(f"sqlite:///{db}", create=False)
    with ix.session() as s:
        upsert_sidecar(s, sidecar())
    ix.close()
    assert db.read_bytes()[18:20] == b"\x01\x01"


# A process of its own: on the old code (WAL) the write below is a SIGBUS, which would kill the
# test run itself. It prints the error the index gave instead.
_UNWRITABLE_SHM = """
import sqlite3, subprocess, sys, time
sys.path.insert(0, sys.argv[2])
from storage.db import open_index
db = sys.argv[1]
ix = open_index("sqlite:///" + db, create=False)
with ix.session() as s:
    s.execute(__import__("sqlalchemy").text("SELECT count(*) FROM recordings"))
holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time\\n"
    "c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA journal_mode=WAL')\\n"
    "c.execute('SELECT 1 FROM recordings').fetchall(); print('ready', flush=True)\\n"
    "time.sleep(60)", db], stdout=subprocess.PIPE, text=True)
assert holder.stdout.readline() == "ready\\n"
subprocess.run(["chattr", "+i", db + "-shm"], check=True)
try:
    with ix.session() as s:
        s.execute(__import__("sqlalchemy").text("SELECT count(*) FROM recordings")).all()
except Exception as exc:
    print(type(exc).__name__, str(exc).splitlines()[0])
finally:
    subprocess.run(["chattr", "-i", db + "-shm"], check=True)
    holder.kill()
"""


def test_an_unwritable_shm_is_an_error_not_a_sigbus(tmp_path: Any) -> None:
    require("chattr")
    db = tmp_path / "i.db"
    open_index(f"sqlite:///{db}", create=True).close()
    out = subprocess.run([sys.executable, "-c", _UNWRITABLE_SHM, str(db), str(REPO)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    subprocess.run(["chattr", "-i", f"{db}-shm"], capture_output=True)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.startswith("OperationalError"), out.stdout
    assert "could not be switched to a rollback journal" in out.stdout


def test_ingest_started_then_finished_replaces_rows(index: Index) -> None:
    with index.session() as s:
        upsert_sidecar(s, sidecar())
    with index.session() as s:
        rec = recording(s, sidecar()["id"])
        assert (rec.status, rec.caller, rec.callee, rec.ended) == (
            "recording",
            "alice",
            "bob",
            None,
        )
    done = sidecar(**copy.deepcopy(FINISHED))
    for _ in range(2):  # idempotent
        with index.session() as s:
            upsert_sidecar(s, done)
    with index.session() as s:
        rec = recording(s, done["id"])
        assert rec.status == "complete"
        assert rec.duration == pytest.approx(60.0)
        assert (rec.worst_loss, rec.worst_jitter, rec.min_mos) == (1.0, 1.5, 4.1)
        assert rec.packets == 2990
        assert rec.meta == {"from": "alice", "to": "bob", "case": "42"}
        streams = s.scalars(select(StreamRow).order_by(StreamRow.id)).all()
        assert [(x.ssrc, x.lost) for x in streams] == [(0xAAAA0001, 3), (0xBBBB0002, 15)]
        ips = set(s.scalars(select(RecordingIp.ip)).all())
        assert ips == {"192.0.2.10", "198.51.100.5", "2001:db8::7"}
        meta = {(m.key, m.value) for m in s.scalars(select(RecordingMeta)).all()}
        assert ("case", "42") in meta


def test_audit_chain_detects_tampering_and_deletion(index: Index) -> None:
    for i in range(5):
        audit.append(index, "search", f"r{i}", {"filters": {"caller": "al*"}}, user="compliance")
    assert audit.verify(index) == []
    with index.session() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(user="mallory"))
    problems = audit.verify(index)
    assert [(p.seq, p.problem.split()[0]) for p in problems] == [(3, "content")]


def test_audit_rows_cannot_fork_the_chain(index: Index) -> None:
    first = audit.append(index, "hold", "r1", user="a")
    # same prev_hash: the UNIQUE constraint refuses it
    with index.session() as s, pytest.raises(IntegrityError):
        s.add(
            AuditEntry(
                time=1.0,
                user="b",
                action="x",
                target="",
                details="{}",
                prev_hash=first.prev_hash,
                hash="f" * 64,
            )
        )
        s.flush()


def test_audit_deleted_row_breaks_the_link(index: Index) -> None:
    for i in range(4):
        audit.append(index, "show", f"r{i}", user="u")
    with index.session() as s:
        s.execute(text("DELETE FROM audit WHERE seq = 2"))
    problems = audit.verify(index)
    assert problems and problems[0].seq == 3 and "link" in problems[0].problem


@pytest.mark.parametrize(
    ("text_", "want"),
    [("from:alice|to:bob", {"from": "alice", "to": "bob"}), ("", {}), ("x|k:v:w", {"k": "v:w"})],
)
def test_split_metadata(text_: str, want: dict[str, str]) -> None:
    assert split_metadata(text_) == want


def test_host_of() -> None:
    assert host_of("192.0.2.1:4000") == "192.0.2.1"
    assert host_of("[2001:db8::1]:4000") == "2001:db8::1"
    assert host_of("2001:db8::1") == "2001:db8::1"
    assert host_of(None) is None


def test_the_wal_check_keeps_the_locks_of_a_transaction_in_progress(tmp_path: Any) -> None:
    # POSIX locks belong to the process: closing any descriptor of the file drops them all. The
    # per-checkout WAL check must not open/close the file while another connection of this
    # process holds a write lock, or a second process writes in the middle of its transaction.
    from storage.db import in_wal_mode

    db = tmp_path / "i.db"
    open_index(f"sqlite:///{db}", create=True).close()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # RESERVED lock, held by this process
    assert in_wal_mode(str(db)) is False
    other = subprocess.run(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         "c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
         "try:\n    c.execute('BEGIN IMMEDIATE')\nexcept sqlite3.OperationalError as e:\n"
         "    print(e)\nelse:\n    print('got the write lock')\n", str(db)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    writer.execute("ROLLBACK")
    writer.close()
    assert other.stdout.strip() == "database is locked"
