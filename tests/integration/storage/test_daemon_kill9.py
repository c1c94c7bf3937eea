"""kill -9 of the real daemon during recorded calls with RTP and RTCP flowing both ways, then a
restart with the same config (index and S3 archive on).

Checked right after the kill, before anything repairs the spool (ARCHITECTURE rule 4):
* every capture is read by tshark without an error, i.e. it ends on a record boundary;
* it holds every packet the relay had forwarded more than a second before the kill (a packet
  is tapped before it is forwarded, so its forwarded copy reaching the peer proves the relay
  had it), RTP and RTCP, both directions, and nothing that was not sent;
* the index has a row per recording, status `recording`.
After the restart: every recording is `interrupted` with the file's size and SHA-256, its row
says so too, the metadata file is finished, and each file is archived to S3 with its checksum
confirmed (the object's bytes are the local file's).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from storage.db import open_index, upgrade
from storage.models import Recording, StreamRow, Upload
from tests.integration.recording.media import Call, Leg, rtp
from tests.support import daemons
from tests.support.db import all_archived, pg_database
from tests.support.s3 import MotoServer
from tests.support.tools import require
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

BUCKET = "kill9"
CALLS = 6
CALLER_SSRC, CALLEE_SSRC = 0xAAAA0001, 0xBBBB0002
# The documented bound (docs/recording.md, ARCHITECTURE rule 4): kill -9 loses at most the
# packets of the last second. Not a wait: the property under test.
LOSS_BOUND = 1.0


def rtcp_sr(ssrc: int, n: int) -> bytes:
    """An RTCP SR whose NTP fraction carries `n`, so each one can be told apart."""
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0, n, 0, 0, 0)


def paired_leg() -> Leg:
    """RTP on an even port p, RTCP on p+1: the relay sends RTCP to p+1 (no a=rtcp in the SDP)."""
    for _ in range(500):
        port = random.randrange(20000, 60000) & ~1
        socks = []
        try:
            for p in (port, port + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            for s in socks:
                s.close()
            continue
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        return Leg(rtp=socks[0], rtcp=socks[1])
    raise RuntimeError("no free port pair")


def packet_id(payload: bytes) -> tuple[str, int, int] | None:
    """(kind, SSRC, n) of one of this test's packets: RTP seq or the SR's counter."""
    if len(payload) >= 28 and payload[1] == 200:
        ssrc, _, n = struct.unpack_from("!III", payload, 4)
        return "rtcp", ssrc, n
    if len(payload) >= 12 and payload[0] == 0x80:
        seq, _, ssrc = struct.unpack_from("!HII", payload, 2)
        return "rtp", ssrc, seq
    return None


class Media:
    """Sends RTP (every round) and RTCP SR (every 5th) both ways on every call, and notes when
    each forwarded copy comes back from the relay."""

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls
        self.rounds = 0
        self.sent: dict[str, set[tuple[str, int, int]]] = {c.call_id: set() for c in calls}
        self.forwarded: dict[str, dict[tuple[str, int, int], float]] = {
            c.call_id: {} for c in calls
        }
        self.stop = threading.Event()
        self.sel = selectors.DefaultSelector()
        for c in calls:
            for leg in (c.caller, c.callee):
                for s in (leg.rtp, leg.rtcp):
                    s.setblocking(False)
                    self.sel.register(s, selectors.EVENT_READ, c.call_id)
        self.threads = [threading.Thread(target=self._send), threading.Thread(target=self._recv)]
        for t in self.threads:
            t.start()

    def _send(self) -> None:
        i = 0
        while not self.stop.is_set():
            for c in self.calls:
                sent = self.sent[c.call_id]
                for leg, ssrc, seq0 in ((c.caller, CALLER_SSRC, 100), (c.callee, CALLEE_SSRC, 500)):
                    try:
                        leg.rtp.sendto(rtp(seq0 + i, 160 * i, ssrc), ("127.0.0.1", leg.relay_port))
                        sent.add(("rtp", ssrc, (seq0 + i) & 0xFFFF))
                        if i % 5 == 0:
                            leg.rtcp.sendto(rtcp_sr(ssrc, i), ("127.0.0.1", leg.relay_port + 1))
                            sent.add(("rtcp", ssrc, i))
                    except OSError:
                        pass  # the relay is gone: its ports refuse
            i += 1
            self.rounds = i
            self.stop.wait(0.02)

    def _recv(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.sel.select(0.1):
                now = time.time()
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                while True:
                    try:
                        data = sock.recv(2048)
                    except OSError:
                        break
                    pid = packet_id(data)
                    if pid is not None:
                        self.forwarded[key.data].setdefault(pid, now)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        self.sel.close()


def tshark_packets(path: Path) -> list[tuple[int, int, bytes]]:
    """(src port, dst port, UDP payload) of every UDP packet tshark reads; fails on any error."""
    out = subprocess.run(
        [require("tshark"), "-r", str(path), "-Y", "udp", "-T", "fields", "-e", "udp.srcport",
         "-e", "udp.dstport", "-e", "udp.payload"],
        capture_output=True, text=True,
    )  # fmt: skip
    errors = [e for e in out.stderr.splitlines() if e.strip() and "Running as user" not in e]
    assert out.returncode == 0 and errors == [], (path, out.stderr)
    rows = []
    for line in out.stdout.splitlines():
        sport, dport, payload = line.split("\t")
        rows.append((int(sport), int(dport), bytes.fromhex(payload.replace(":", ""))))
    return rows


@pytest.fixture(params=[("eth", "sqlite"), ("raw", "sqlite"), ("pcapng", "postgresql")],
                ids=["eth-sqlite", "raw-sqlite", "pcapng-postgresql"])  # fmt: skip
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None]]:
    fmt, db = request.param
    if db == "sqlite":
        yield fmt, None  # the embedded default: recordings.db inside recording-dir
    else:
        yield from ((fmt, url) for url in pg_database())


def test_kill9_during_recorded_calls(
    setup: tuple[str, str | None], s3: MotoServer, tmp_path: Path
) -> None:
    fmt, db_url = setup
    s3.client.create_bucket(Bucket=BUCKET)
    spool = tmp_path / "spool"
    extra = [
        f"--recording-dir={spool}",
        f"--recording-format={fmt}",
        "--delete-delay=0",
        f"--s3-bucket={BUCKET}",
        f"--s3-endpoint-url={s3.endpoint}",
        "--s3-region=us-east-1",
        "--s3-retry-initial=0.2",
        "--s3-retry-max=1",
        "--s3-prefix={node}/{call_id}/",
        "--recording-node=kill9-node",
    ]
    if db_url is not None:
        upgrade(db_url)
        extra.append(f"--recording-db={db_url}")
    url = db_url or "sqlite:///" + str(spool / "recordings.db")
    ext = "pcapng" if fmt == "pcapng" else "pcap"

    relay = daemons.start("rtpvault", tmp_path / "run1", extra=extra)
    calls = [Call(relay, f"kill9-{i}@192.0.2.1") for i in range(CALLS)]
    media: Media | None = None
    try:
        for c in calls:
            c.caller.close()
            c.callee.close()
            c.caller, c.callee = paired_leg(), paired_leg()
            c.offer(**{"record-call": "yes", "metadata": f"from:a-{c.call_id}|to:b"})
            c.answer()
        media = Media(calls)

        def flowing() -> bool:  # media both ways, RTP and RTCP, for a while, on disk
            return (
                media.rounds >= 150
                and all(
                    {k for k, _, _ in f} == {"rtp", "rtcp"} and len(f) > 200
                    for f in media.forwarded.values()
                )
                and len(list((spool / "pcaps").glob(f"*.{ext}"))) == CALLS
            )

        assert wait_for(flowing, 60, retry_on=(Exception,)), relay.log()[-3000:]
        killed_at = time.time()
        relay.proc.send_signal(signal.SIGKILL)
        relay.proc.wait(10)
    finally:
        if media is not None:
            media.close()
        for c in calls:
            c.close()
    assert media is not None

    # -- right after the kill: nothing has repaired anything yet -------------------------------
    by_call: dict[str, Path] = {}
    for side in (spool / "sidecars").glob("*.json"):
        doc = json.loads(side.read_text())
        assert doc["status"] == "recording"
        by_call[doc["call_id"]] = Path(doc["path"])
    assert sorted(by_call) == sorted(c.call_id for c in calls)
    before: dict[str, bytes] = {}
    for c in calls:
        path = by_call[c.call_id]
        before[c.call_id] = path.read_bytes()
        got = {packet_id(p) for _, _, p in tshark_packets(path)}
        assert got <= media.sent[c.call_id], got - media.sent[c.call_id]
        due = {pid for pid, t in media.forwarded[c.call_id].items()
               if t <= killed_at - LOSS_BOUND}  # fmt: skip
        assert {k for k, _, _ in due} == {"rtp", "rtcp"}
        assert {s for _, s, _ in due} == {CALLER_SSRC, CALLEE_SSRC}
        missing = due - got
        assert not missing, f"{c.call_id}: {len(missing)} packets lost, e.g. {sorted(missing)[:5]}"
    index = open_index(url, create=False)
    try:
        with index.session() as s:
            rows = s.scalars(select(Recording)).all()
            assert sorted(r.call_id for r in rows) == sorted(c.call_id for c in calls)
            assert {r.status for r in rows} == {"recording"}
            assert {r.path for r in rows} == {str(p) for p in by_call.values()}
            assert s.scalars(select(Upload)).all() == []

        # -- restart with the same config: recovery, index, archive ----------------------------
        relay = daemons.start("rtpvault", tmp_path / "run2", extra=extra)
        try:

            assert wait_for(
                lambda: all_archived(index, CALLS), 60, retry_on=(Exception,)
            ), relay.log()[-3000:]
        finally:
            relay.stop()
        with index.session() as s:
            rows = s.scalars(select(Recording)).all()
            jobs = {j.recording_id: j for j in s.scalars(select(Upload))}
            streams = {
                r.id: list(s.scalars(select(StreamRow).where(StreamRow.recording_id == r.id)))
                for r in rows
            }
            s.expunge_all()
    finally:
        index.close()
    assert len(rows) == CALLS
    for rec in rows:
        path = Path(rec.path)
        data = path.read_bytes()
        # recovery only ever removes a partial trailing record
        assert before[rec.call_id].startswith(data)
        packets = tshark_packets(path)
        kinds = {(packet_id(p) or ("?", 0, 0))[:2] for *_, p in packets}
        assert kinds == {(k, s) for k in ("rtp", "rtcp") for s in (CALLER_SSRC, CALLEE_SSRC)}
        sha = hashlib.sha256(data).hexdigest()
        assert (rec.status, rec.size, rec.sha256) == ("interrupted", len(data), sha), rec.reason
        assert rec.reason and "trimmed" in rec.reason
        assert rec.caller == f"a-{rec.call_id}" and rec.callee == "b"
        assert rec.packets == len(packets)
        assert sum(st.packets for st in streams[rec.id]) == len(packets)
        assert {(st.kind, st.ssrc) for st in streams[rec.id]} == kinds
        # party and codec of each stream, although the crash came before the finish wrote them
        assert {(st.kind, st.ssrc, st.party, st.codec) for st in streams[rec.id]} == {
            ("rtp", CALLER_SSRC, "ft", "PCMU"), ("rtp", CALLEE_SSRC, "tt", "PCMU"),
            ("rtcp", CALLER_SSRC, "ft", None), ("rtcp", CALLEE_SSRC, "tt", None),
        }  # fmt: skip
        assert rec.sidecar_path == str(spool / "sidecars" / f"{path.stem}.json")
        side = json.loads(Path(rec.sidecar_path).read_text())
        assert (side["status"], side["size"], side["sha256"]) == ("interrupted", len(data), sha)
        meta = Path(rec.metadata_path or "")
        assert meta.parent == spool / "metadata" and meta.read_text().endswith(
            f"\n\n\nfrom:a-{rec.call_id}|to:b\n"
        )
        assert jobs[rec.id].state == "done"
        key_prefix = f"kill9-node/{quote(rec.call_id, safe='-_.~')}/"
        assert rec.object_key and rec.object_key.startswith(key_prefix)
        assert rec.object_sha256 == sha
        obj = s3.client.get_object(Bucket=BUCKET, Key=rec.object_key, ChecksumMode="ENABLED")
        assert obj["Body"].read() == data
        assert obj["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(sha)).decode()
        assert obj["Metadata"]["sha256"] == sha
    assert list((spool / "tmp").iterdir()) == []

    # the operator's proof: every local file and S3 object re-hashed against the index
    conf = tmp_path / "rtpvault.conf"
    conf.write_text("[rtpengine]\n" + "".join(
        f"{a[2:].split('=', 1)[0]} = {a.split('=', 1)[1]}\n" for a in extra))  # fmt: skip
    verify = subprocess.run(
        [*daemons.rtpvault_command(), "verify", f"--config-file={conf}", "--status=interrupted"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"verified {CALLS} recordings, {2 * CALLS} copies: 0 problems" in verify.stdout


def test_kill9_before_the_index_heard_of_the_finish(s3: MotoServer, tmp_path: Path) -> None:
    """Calls finished on disk (sidecar `complete`) but the index writer had not written that yet
    when the daemon was killed (here: the test holds SQLite's write lock), one of them not even
    its start. After the restart no row stays `recording` and none is missing: they are
    completed from the sidecars and archived."""
    import sqlite3

    s3.client.create_bucket(Bucket=BUCKET)
    spool = tmp_path / "spool"
    extra = [
        f"--recording-dir={spool}", "--recording-format=eth", "--delete-delay=0",
        f"--s3-bucket={BUCKET}", f"--s3-endpoint-url={s3.endpoint}", "--s3-region=us-east-1",
        "--s3-retry-initial=0.2", "--s3-retry-max=1",
    ]  # fmt: skip
    url = "sqlite:///" + str(spool / "recordings.db")
    relay = daemons.start("rtpvault", tmp_path / "run1", extra=extra)
    index = open_index(url, create=False)
    lock: sqlite3.Connection | None = None
    try:
        calls = [Call(relay, f"late-{i}@192.0.2.1") for i in range(3)]
        for c in calls:
            c.offer(**{"record-call": "yes", "metadata": "from:x|to:y"})
            c.answer()
            c.media(5, rtcp=True)
            c.relayed(5)

        def rows_recording() -> bool:
            with index.session() as s:
                return len(s.scalars(select(Recording.status)).all()) == len(calls)

        assert wait_for(rows_recording, 60, retry_on=(Exception,))
        lock = sqlite3.connect(spool / "recordings.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the daemon's index writer now waits
        unseen = Call(relay, "late-unseen@192.0.2.1")  # no row at all, not even `recording`
        unseen.offer(**{"record-call": "yes", "metadata": "from:x|to:y"})
        unseen.answer()
        unseen.media(5, rtcp=True)
        unseen.relayed(5)
        calls.append(unseen)
        for c in calls:
            c.delete()
            c.close()

        def finished_on_disk() -> bool:
            docs = [json.loads(p.read_text()) for p in (spool / "sidecars").glob("*.json")]
            return len(docs) == len(calls) and {d["status"] for d in docs} == {"complete"}

        assert wait_for(finished_on_disk, 60, retry_on=(Exception,)), relay.log()[-3000:]
        relay.proc.send_signal(signal.SIGKILL)
        relay.proc.wait(10)
        lock.execute("ROLLBACK")
        lock.close()
        lock = None
        with index.session() as s:
            assert sorted(s.scalars(select(Recording.call_id)).all()) == [
                f"late-{i}@192.0.2.1" for i in range(3)
            ]
            assert set(s.scalars(select(Recording.status)).all()) == {"recording"}

        relay = daemons.start("rtpvault", tmp_path / "run2", extra=extra)

        assert wait_for(
            lambda: all_archived(index, len(calls)), 30, retry_on=(Exception,)
        ), relay.log()[-3000:]
        with index.session() as s:
            for rec in s.scalars(select(Recording)):
                data = Path(rec.path).read_bytes()
                sha = hashlib.sha256(data).hexdigest()
                assert (rec.status, rec.size, rec.sha256) == ("complete", len(data), sha)
                assert rec.object_sha256 == sha and rec.packets == 12
                body = s3.client.get_object(Bucket=BUCKET, Key=rec.object_key)["Body"].read()
                assert body == data
    finally:
        if lock is not None:
            lock.close()
        relay.stop()
        index.close()
