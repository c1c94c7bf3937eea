"""Index faults cannot kill the relay (issue 15 item 4).

The embedded SQLite index used WAL, whose `-shm` file SQLite memory-maps: made immutable, the next
recorded offer's index write was a SIGBUS (exit 135, every call dropped, nothing logged). Now the
index runs with a rollback journal; a file switched to WAL behind the daemon's back is converted
in a child process, and a fault there is logged, counted and retried while media flows.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import open_index
from storage.models import Recording
from tests.integration.ops.test_ops import one, scrape
from tests.integration.recording.media import Call
from tests.support import daemons
from tests.support.tools import free_port, require
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

# A foreign program (an older rtpvault, a sqlite3 shell) that puts the index in WAL mode and
# keeps it open, so the -shm file exists and is mapped.
HOLDER = (
    "import sqlite3, sys, time\n"
    "c = sqlite3.connect(sys.argv[1])\n"
    "c.execute('PRAGMA journal_mode=WAL')\n"
    "c.execute('SELECT count(*) FROM recordings').fetchall()\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    paths: list[Path] = []
    yield paths
    for p in paths:
        subprocess.run([require("chattr"), "-i", str(p)], check=False)


def rows(db: Path) -> list[tuple[str, str]]:
    index = open_index(f"sqlite:///{db}", create=False)
    try:
        with index.session() as s:
            return [(r.call_id, r.status) for r in s.scalars(select(Recording))]
    finally:
        index.close()


def test_unwritable_shm_does_not_kill_the_relay(tmp_path: Path, immutable: list[Path]) -> None:
    spool = tmp_path / "spool"
    db = spool / "recordings.db"
    http = free_port()
    extra = [f"--recording-dir={spool}", "--delete-delay=0", f"--listen-http=127.0.0.1:{http}"]
    relay = daemons.start("rtpvault", tmp_path / "run", extra=extra)
    holder = None
    try:
        first = Call(relay, "index-fault-1")
        first.offer(**{"record-call": "yes"})
        first.answer()
        first.delete()
        first.close()
        assert wait_for(lambda: rows(db) == [("index-fault-1", "complete")], 20, retry_on=(
            Exception,)), relay.log()[-3000:]  # fmt: skip
        assert db.read_bytes()[18:20] == b"\x01\x01"  # a rollback journal: no -shm at all
        assert not (spool / "recordings.db-shm").exists()

        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE,
                                  text=True)  # fmt: skip
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        shm = spool / "recordings.db-shm"
        subprocess.run([require("chattr"), "+i", str(shm)], check=True)
        immutable.append(shm)

        second = Call(relay, "index-fault-2")
        second.offer(**{"record-call": "yes"})
        second.answer()
        second.media(10)
        assert second.received(second.callee, 10) == 10  # media keeps flowing
        assert second.received(second.caller, 10) == 10
        assert wait_for(lambda: "could not be switched to a rollback journal" in relay.log(), 20)
        assert relay.proc.poll() is None, relay.log()[-3000:]
        metrics = scrape(http)
        assert one(metrics, "rtpvault_db_errors_total") >= 1
        assert one(metrics, "rtpvault_index_pending") >= 1  # the start event waits
        second.delete()
        second.close()

        # the fault cleared: the waiting documents are written
        subprocess.run([require("chattr"), "-i", str(shm)], check=True)
        holder.kill()
        holder.wait()
        holder = None
        assert wait_for(
            lambda: sorted(rows(db)) == [("index-fault-1", "complete"),
                                         ("index-fault-2", "complete")],
            30, retry_on=(Exception,),
        ), relay.log()[-3000:]  # fmt: skip
        assert relay.proc.poll() is None
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        for p in immutable:
            subprocess.run([require("chattr"), "-i", str(p)], check=False)
        assert relay.stop() == 0, relay.log()[-3000:]
