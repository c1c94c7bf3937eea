"""rtpvault.archive on its own: sidecar documents as the recorder hands them over (start, then
finish) become index rows and, with a bucket, verified S3 objects; index on SQLite and
PostgreSQL, S3 = moto_server. The recorder is replaced by what it publishes (its events), the
database and S3 are real."""

from __future__ import annotations

import asyncio
import hashlib
import os
import select as select_
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from relay.config import parse_args, settings_from_text
from relay.config.interfaces import Resolver
from rtpvault import archive
from rtpvault.component import StartupError
from storage.db import open_index, upgrade
from storage.models import Recording, Upload
from tests.support.db import all_archived, pg_database, recording
from tests.support.s3 import MotoServer
from tests.support.tools import free_port
from tests.support.wait import wait_for

RESOLVER = Resolver({"lo": ("127.0.0.1", "::1")})


class Recorder:
    """The recording part as the archive sees it: subscribe(fn), fn(sidecar) per event."""

    def __init__(self) -> None:
        self.subscribers: list[Callable[[dict[str, Any]], None]] = []

    def subscribe(self, fn: Callable[[dict[str, Any]], None]) -> None:
        self.subscribers.append(fn)

    def publish(self, doc: dict[str, Any]) -> None:
        for fn in self.subscribers:
            fn(doc)


def daemon(*argv: str) -> tuple[SimpleNamespace, Recorder]:
    text = "[rtpengine]\ninterface = lo/127.0.0.1\nlisten-ng = 127.0.0.1:2223\n"
    settings, _ = settings_from_text(text, parse_args(list(argv)), resolver=RESOLVER)
    rec = Recorder()
    return SimpleNamespace(settings=settings, components={"recording": rec}), rec


def documents(spool: Path, n: int = 1) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(started, finished) sidecars of `n` recordings whose files exist in spool/pcaps."""
    (spool / "pcaps").mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        rid = str(uuid.uuid4())
        path = spool / "pcaps" / f"call-{i}@host-{rid[:8]}.pcap"
        data = os.urandom(5000 + i)
        path.write_bytes(data)
        start = {
            "version": 1,
            "id": rid,
            "node": "relay-t",
            "call_id": f"call-{i}@host",
            "tags": ["ft"],
            "metadata": "from:alice|to:bob",
            "format": "pcap",
            "path": str(path),
            "started": time.time() - 60,
            "ended": None,
            "status": "recording",
            "size": None,
            "sha256": None,
            "streams": [],
        }
        end = dict(
            start,
            status="complete",
            ended=time.time(),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        out.append((start, end))
    return out


def test_started_then_finished_recordings_are_indexed_and_archived(
    index_url: str, s3: MotoServer, tmp_path: Path
) -> None:
    s3.client.create_bucket(Bucket="arch")
    spool = tmp_path / "spool"
    argv = [
        f"--recording-dir={spool}",
        "--s3-bucket=arch",
        f"--s3-endpoint-url={s3.endpoint}",
        "--s3-region=us-east-1",
        "--s3-retry-initial=0.1",
        "--recording-node=relay-t",
    ]
    if index_url.startswith("postgresql"):
        upgrade(index_url)
        argv.append(f"--recording-db={index_url}")
    d, recorder = daemon(*argv)
    comp = archive.attach(d)
    assert comp is not None and recorder.subscribers
    url = index_url if index_url.startswith("postgresql") else archive_default(spool)
    index = open_index(url, create=False)
    try:
        asyncio.run(comp.start())
        docs = documents(spool, 3)
        for start, _ in docs:
            recorder.publish(start)
        for _, end in docs:
            recorder.publish(end)

        assert wait_for(lambda: all_archived(index, 3))
        with index.session() as s:
            rows = s.scalars(select(Recording).order_by(Recording.call_id)).all()
            assert [(r.call_id, r.status, r.caller, r.callee, r.node) for r in rows] == [
                (f"call-{i}@host", "complete", "alice", "bob", "relay-t") for i in range(3)
            ]
            assert {j.state for j in s.scalars(select(Upload))} == {"done"}
        for r in rows:
            body = s3.client.get_object(Bucket="arch", Key=r.object_key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == r.sha256
        assert wait_for(lambda: comp.stats()["upload_queue_depth"] == 0)
        stats = comp.stats()
        assert stats["uploads"]["done"] == 3 and stats["db_errors"] == 0
        assert stats["uploaded_bytes"] == sum(r.size or 0 for r in rows)
        assert isinstance(stats["upload_oldest_age_seconds"], float)
    finally:
        comp.close()
        index.close()


def archive_default(spool: Path) -> str:
    return "sqlite:///" + str(spool / "recordings.db")


def test_without_a_bucket_rows_stay_local(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    d, recorder = daemon(f"--recording-dir={spool}")
    comp = archive.attach(d)
    assert comp is not None and comp.uploader is None
    index = open_index(archive_default(spool), create=False)
    try:
        ((start, end),) = documents(spool)
        recorder.publish(start)
        recorder.publish(end)

        def done() -> bool:
            with index.session() as s:
                return s.scalars(select(Recording.status)).all() == ["complete"]

        assert wait_for(done)
        with index.session() as s:
            assert s.scalars(select(Recording.archive_state)).one() == "local"
            assert s.scalars(select(Upload)).all() == []
        assert comp.stats()["upload_queue_depth"] == 0
    finally:
        comp.close()
        index.close()


def test_a_stale_explicit_index_stops_start_up(index_url: str, tmp_path: Path) -> None:
    d, _ = daemon(f"--recording-dir={tmp_path}", f"--recording-db={index_url}")
    with pytest.raises(StartupError, match="run `rtpvault db upgrade"):
        archive.attach(d)


def test_no_recording_dir_no_archive(tmp_path: Path) -> None:
    d, _ = daemon()
    assert archive.attach(d) is None


def test_a_bad_document_is_refused_and_the_next_one_indexed(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    d, recorder = daemon(f"--recording-dir={spool}")
    comp = archive.attach(d)
    assert comp is not None
    index = open_index(archive_default(spool), create=False)
    try:
        ((start, end),) = documents(spool)
        recorder.publish({"call_id": "no id at all"})
        recorder.publish(dict(end, id="x" * 50))
        recorder.publish(end)

        def indexed() -> bool:
            with index.session() as s:
                return s.scalars(select(Recording.id)).all() == [end["id"]]

        assert wait_for(indexed)
        stats = comp.stats()
        assert (stats["index_rejected"], stats["db_errors"]) == (2, 0)
    finally:
        comp.close()
        index.close()


def test_a_bad_prefix_template_stops_start_up(tmp_path: Path) -> None:
    d, _ = daemon(f"--recording-dir={tmp_path}", "--s3-bucket=b", "--s3-prefix={yyyy}/{callid}/")
    with pytest.raises(StartupError, match="callid"):
        archive.attach(d)


class TcpProxy:
    """127.0.0.1:<port> → PostgreSQL, switched on later: a database server that comes back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> None:
        target = self.target

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                upstream = socket.create_connection(target)
                pair = [self.request, upstream]
                try:
                    while True:
                        readable, _, _ = select_.select(pair, [], [], 30)
                        if not readable:
                            return
                        for sock in readable:
                            data = sock.recv(65536)
                            if not data:
                                return
                            (upstream if sock is self.request else self.request).sendall(data)
                finally:
                    upstream.close()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Pipe)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_database()


def test_database_down_at_start_up_relay_starts_and_rows_follow(
    pg_url: str, s3: MotoServer, tmp_path: Path
) -> None:
    upgrade(pg_url)
    proxy = TcpProxy(("127.0.0.1", 5432))
    via_proxy = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    s3.client.create_bucket(Bucket="later")
    spool = tmp_path / "spool"
    d, recorder = daemon(
        f"--recording-dir={spool}",
        f"--recording-db={via_proxy}",
        "--s3-bucket=later",
        f"--s3-endpoint-url={s3.endpoint}",
        "--s3-region=us-east-1",
        "--s3-retry-initial=0.1",
    )
    comp = archive.attach(d)  # nothing answers on the proxy port yet: no StartupError
    assert comp is not None
    index = open_index(pg_url, create=False)
    try:
        asyncio.run(comp.start())
        ((start, end),) = documents(spool)
        recorder.publish(start)
        recorder.publish(end)
        assert wait_for(lambda: comp.stats()["db_errors"] >= 1)
        with index.session() as s:
            assert s.scalars(select(Recording)).all() == []  # nothing could be written
        proxy.start()  # the database answers again

        def archived() -> bool:
            with index.session() as s:
                return s.scalars(select(Recording.archive_state)).all() == ["archived"]

        assert wait_for(archived)
        with index.session() as s:
            assert recording(s, end["id"]).status == "complete"
    finally:
        comp.close()
        index.close()
        proxy.stop()


def test_an_unopenable_sqlite_file_still_stops_start_up(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/no/such/dir/index.db"
    d, _ = daemon(f"--recording-dir={tmp_path}", f"--recording-db={db}")
    with pytest.raises(StartupError, match="recording-db"):
        archive.attach(d)


def test_documents_queued_together_are_written_in_one_transaction(tmp_path: Path) -> None:
    """Many recordings ending at once (shutdown, a burst of hang-ups) cost one commit per
    batch, not one per recording: the index is held locked while 40 documents arrive, then
    everything is written in at most two transactions (the one that was waiting, the rest)."""
    import sqlite3

    from sqlalchemy import event

    spool = tmp_path / "spool"
    d, recorder = daemon(f"--recording-dir={spool}")
    comp = archive.attach(d)
    assert comp is not None
    commits: list[int] = []
    event.listen(comp.index.engine, "commit", lambda conn: commits.append(1))
    lock = sqlite3.connect(spool / "recordings.db", isolation_level=None)
    index = open_index(archive_default(spool), create=False)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        docs = documents(spool, 40)
        for _, end in docs:
            recorder.publish(end)
        lock.execute("COMMIT")
        comp.close()
        with index.session() as s:
            assert s.scalars(select(Recording.status)).all() == ["complete"] * 40
        assert 1 <= len(commits) <= 2
    finally:
        lock.close()
        index.close()


def test_a_bad_document_in_a_batch_costs_only_itself(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    d, recorder = daemon(f"--recording-dir={spool}")
    comp = archive.attach(d)
    assert comp is not None
    index = open_index(archive_default(spool), create=False)
    try:
        docs = [end for _, end in documents(spool, 20)]
        docs.insert(10, dict(docs[0], id="x" * 50))
        for doc in docs:
            recorder.publish(doc)
        comp.close()
        with index.session() as s:
            assert sorted(s.scalars(select(Recording.id))) == sorted(d["id"] for d in docs
                                                                     if len(d["id"]) == 36)
        assert comp.stats()["index_rejected"] == 1
    finally:
        index.close()
