"""Several rtpvault processes sharing one recording-dir, one index and one S3 bucket, as the
`num-threads` workers of one daemon do (issue 18 items 4 and 5): here two ordinary daemons with
the same recording-dir, recording-db, recording-node and bucket, and their own ng port and port
range (the workers' supervisor is not needed for what is under test).

One is killed (-9) during a recorded call while the other records one too, then started again.
Its restart recovers its own call (`interrupted`) and leaves the other daemon's live recording
alone: that one records to its end and ends `complete`. Every call has one row and one object,
stored once (one version in a versioned bucket, one PUT in moto's request log), whose checksum
is the file's.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import open_index, upgrade
from storage.models import Recording, Upload
from tests.integration.recording.media import Call, rtp
from tests.support import daemons
from tests.support.db import all_archived, pg_database
from tests.support.s3 import MotoServer
from tests.support.tools import require
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

BUCKET = "shared"
CALLER_SSRC = 0xAAAA0001


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None  # the embedded default: recordings.db inside the shared recording-dir
    else:
        for url in pg_database():
            upgrade(url)
            yield url


class Sender:
    """RTP both ways on each call every 20 ms until stopped; counts what it sent. Sends to a
    killed relay's ports are lost, as a phone's would be."""

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls
        self.sent = {c.call_id: 0 for c in calls}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            for c in self.calls:
                i = self.sent[c.call_id]
                try:
                    c.caller.rtp.sendto(rtp(100 + i, 160 * i, CALLER_SSRC),
                                        ("127.0.0.1", c.caller.relay_port))  # fmt: skip
                    c.callee.rtp.sendto(rtp(500 + i, 160 * i, 0xBBBB0002),
                                        ("127.0.0.1", c.callee.relay_port))  # fmt: skip
                except OSError:
                    pass
                self.sent[c.call_id] = i + 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def caller_seqs(path: Path) -> list[int]:
    """RTP sequence numbers of the caller's packets in a capture, as tshark reads them."""
    out = subprocess.run(
        [require("tshark"), "-r", str(path), "-T", "fields", "-e", "udp.payload"],
        capture_output=True, text=True,
    )  # fmt: skip
    errors = [e for e in out.stderr.splitlines() if e.strip() and "Running as user" not in e]
    assert out.returncode == 0 and errors == [], out.stderr
    seqs = []
    for line in out.stdout.split():
        payload = bytes.fromhex(line.replace(":", ""))
        if len(payload) >= 12 and int.from_bytes(payload[8:12], "big") == CALLER_SSRC:
            seqs.append(int.from_bytes(payload[2:4], "big"))
    return seqs


def sidecars(spool: Path) -> dict[str, dict[str, object]]:
    docs = [json.loads(p.read_text()) for p in (spool / "sidecars").glob("*.json")]
    return {str(d["call_id"]): d for d in docs}


def object_puts(s3: MotoServer, path: Path) -> int:
    """PUT requests moto served for the object of the recording at `path` (found by the 16
    random hex digits of its name, which the object key keeps)."""
    token = path.stem.rsplit("-", 1)[-1]
    log = s3.log.read_text(errors="replace")
    return len(re.findall(rf'"PUT /{BUCKET}/[^ ?"]*-{token}\.pcap[^ "]* HTTP', log))


def test_two_daemons_share_spool_index_and_bucket_one_killed(
    db_url: str | None, s3: MotoServer, tmp_path: Path
) -> None:
    s3.client.create_bucket(Bucket=BUCKET)
    s3.client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    spool = tmp_path / "spool"
    extra = [
        f"--recording-dir={spool}", "--recording-format=eth", "--delete-delay=0",
        f"--s3-bucket={BUCKET}", f"--s3-endpoint-url={s3.endpoint}", "--s3-region=us-east-1",
        "--s3-retry-initial=0.2", "--s3-retry-max=1", "--s3-prefix={call_id}/",
        "--recording-node=shared-node",
    ]  # fmt: skip
    if db_url is not None:
        extra.append(f"--recording-db={db_url}")
    url = db_url or "sqlite:///" + str(spool / "recordings.db")
    a = daemons.start("rtpvault", tmp_path / "a1", extra=extra)
    b = daemons.start("rtpvault", tmp_path / "b", extra=extra)
    a2: daemons.Daemon | None = None
    call_a, call_b = Call(a, "killed@192.0.2.1"), Call(b, "survivor@192.0.2.1")
    sender: Sender | None = None
    index = open_index(url, create=False)
    try:
        for c in (call_a, call_b):
            c.offer(**{"record-call": "yes", "metadata": "from:x|to:y"})
            c.answer()
        sender = Sender([call_a, call_b])

        def both_recording() -> bool:
            with index.session() as s:
                rows = s.scalars(select(Recording)).all()
            return sorted(r.status for r in rows) == ["recording", "recording"] and all(
                len(caller_seqs(Path(r.path))) >= 20 for r in rows
            )

        assert wait_for(both_recording, 60, retry_on=(Exception,)), b.log()[-3000:]
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        a.stop()

        # the restart recovers its own call while the other daemon goes on recording
        a2 = daemons.start("rtpvault", tmp_path / "a2", extra=extra)

        def a_archived() -> bool:
            with index.session() as s:
                row = s.scalars(select(Recording).where(Recording.call_id == call_a.call_id)).one()
            return (row.status, row.archive_state) == ("interrupted", "archived")

        assert wait_for(a_archived, 60, retry_on=(Exception,)), a2.log()[-3000:]
        assert sidecars(spool)[call_b.call_id]["status"] == "recording"
        with index.session() as s:
            row = s.scalars(select(Recording).where(Recording.call_id == call_b.call_id)).one()
            assert row.status == "recording"
        assert re.search(r"survivor%40192\.0\.2\.1-\w+\.json is being written by a live process",
                         a2.log())  # fmt: skip
        recorded = len(caller_seqs(Path(row.path)))
        assert wait_for(lambda: len(caller_seqs(Path(row.path))) >= recorded + 25, 60)
        sender.close()
        sender = None
        call_b.media(10, start=10_000)  # the last packets, each one relayed (so recorded)
        call_b.relayed(10)
        call_b.delete()
        assert wait_for(lambda: all_archived(index, 2), 60, retry_on=(Exception,)), b.log()[-3000:]
        with index.session() as s:
            rows = {r.call_id: r for r in s.scalars(select(Recording))}
            jobs = {j.recording_id: j for j in s.scalars(select(Upload))}
            s.expunge_all()
    finally:
        if sender is not None:
            sender.close()
        for c in (call_a, call_b):
            c.close()
        index.close()
        for d in (a, b, a2):
            if d is not None:
                d.stop()
    assert sorted(rows) == sorted((call_a.call_id, call_b.call_id))
    assert (rows[call_a.call_id].status, rows[call_b.call_id].status) == ("interrupted", "complete")
    for rec in rows.values():
        path = Path(rec.path)
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        assert (rec.size, rec.sha256, rec.object_sha256) == (len(data), sha, sha), rec.reason
        assert jobs[rec.id].state == "done" and jobs[rec.id].attempts == 1
        side = sidecars(spool)[rec.call_id]
        assert (side["status"], side["sha256"]) == (rec.status, sha)
        assert rec.object_key is not None
        versions = s3.client.list_object_versions(Bucket=BUCKET, Prefix=rec.object_key)
        assert [v["Key"] for v in versions.get("Versions", [])] == [rec.object_key]
        assert object_puts(s3, path) == 1
        body = s3.client.get_object(Bucket=BUCKET, Key=rec.object_key)["Body"].read()
        assert body == data
    # the survivor's file: every packet from the first one recorded to the last one sent,
    # nothing cut by the other daemon's recovery
    seqs = caller_seqs(Path(rows[call_b.call_id].path))
    assert seqs[-10:] == [(100 + 10_000 + i) & 0xFFFF for i in range(10)]
    assert seqs[:-10] == list(range(seqs[0], seqs[0] + len(seqs) - 10))
    assert rows[call_b.call_id].packets >= len(seqs)
    assert list((spool / "tmp").iterdir()) == []
    assert len(list((spool / "metadata").iterdir())) == 2


def test_two_daemons_starting_together_recover_a_dead_ones_calls_once(
    s3: MotoServer, tmp_path: Path
) -> None:
    """A daemon killed -9 during recorded calls; two daemons then start on the same spool at
    the same moment (workers starting together): each call is recovered by one of them, indexed
    once (`interrupted`) and stored once. End to end only: whether two daemons' recoveries
    overlap depends on their start-up times; the overlap itself is forced, with a start signal,
    in tests/integration/recording/test_shared_recovery.py."""
    s3.client.create_bucket(Bucket=BUCKET)
    s3.client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    spool = tmp_path / "spool"
    extra = [
        f"--recording-dir={spool}", "--recording-format=eth", "--delete-delay=0",
        f"--s3-bucket={BUCKET}", f"--s3-endpoint-url={s3.endpoint}", "--s3-region=us-east-1",
        "--s3-retry-initial=0.2", "--s3-retry-max=1", "--recording-node=shared-node",
    ]  # fmt: skip
    dead = daemons.start("rtpvault", tmp_path / "dead", extra=extra)
    calls = [Call(dead, f"left-{i}@192.0.2.1") for i in range(4)]
    try:
        for c in calls:
            c.offer(**{"record-call": "yes"})
            c.answer()
            c.media(20)
            c.relayed(20)

        def on_disk() -> bool:  # every packet flushed to its file
            docs = sidecars(spool).values()
            return len(docs) == len(calls) and all(
                len(caller_seqs(Path(str(d["path"])))) == 20 for d in docs
            )

        assert wait_for(on_disk, 30, retry_on=(Exception,)), dead.log()[-3000:]
        dead.proc.send_signal(signal.SIGKILL)
        dead.proc.wait(10)
    finally:
        for c in calls:
            c.close()
        dead.stop()
    assert {d["status"] for d in sidecars(spool).values()} == {"recording"}
    started: list[daemons.Daemon] = []
    threads = [
        threading.Thread(
            target=lambda n=n: started.append(
                daemons.start("rtpvault", tmp_path / f"w{n}", extra=extra)
            )  # fmt: skip
        )
        for n in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    index = open_index("sqlite:///" + str(spool / "recordings.db"), create=False)
    try:
        assert len(started) == 2
        assert wait_for(lambda: all_archived(index, len(calls)), 60, retry_on=(Exception,))
        with index.session() as s:
            rows = s.scalars(select(Recording)).all()
            jobs = {j.recording_id: j for j in s.scalars(select(Upload))}
            s.expunge_all()
    finally:
        index.close()
        for d in started:
            d.stop()
    logs = "".join(d.log() for d in started)
    assert logs.count("recovered interrupted recording") == len(calls)
    assert sorted(r.call_id for r in rows) == sorted(c.call_id for c in calls)
    for rec in rows:
        data = Path(rec.path).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        assert (rec.status, rec.sha256, rec.object_sha256) == ("interrupted", sha, sha)
        assert caller_seqs(Path(rec.path)) == list(range(100, 120))
        assert (jobs[rec.id].state, jobs[rec.id].attempts) == ("done", 1)
        assert rec.object_key is not None
        versions = s3.client.list_object_versions(Bucket=BUCKET, Prefix=rec.object_key)
        assert len(versions.get("Versions", [])) == 1
        assert object_puts(s3, Path(rec.path)) == 1
