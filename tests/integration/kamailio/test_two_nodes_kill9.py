"""Issue 20 end to end: Kamailio 5.6, two rtpvault nodes, one PostgreSQL index, one S3 bucket,
each node's call state in the machine's Redis; a `kill -9` of one node during recorded calls.

Kamailio runs examples/kamailio-two-nodes.cfg with both nodes in its `rtpengine_sock` set and
`record-call=yes` in the flags of every `rtpengine_manage()` (its MANAGE_FLAGS define, as
examples/kamailio.cfg puts `record-call=` in its offer flags). Each node has its own
recording-node, interface address (node-a 127.0.0.1, node-b 127.0.0.3), port range, spool and
Redis DB (the machine's Redis, DBs of tests/integration/redis/rig.py) and two workers; both
share a fresh PostgreSQL database and one versioned moto bucket.

sipp places four calls (two per node: Kamailio's call-id hash, docs/spec/ng-protocol.md §10.2)
whose caller plays 12 s of PCMA while the callee echoes it. Mid-media node-a is killed
(SIGKILL) and started again with the same command line at once. Kamailio sends nothing to
node-a while it is down (the calls are up, their BYEs come later), so it never marks the node
disabled and `rtpengine_disable_tout` plays no part: the restart is what a supervisor
(systemd `Restart=always`) does, and the calls' later commands (the BYE's `delete`) find the
node as Kamailio left it. The test checks that Kamailio logged no failed command.

Then: node-b's calls never noticed (every packet relayed, one part each); node-a restored its
calls from Redis (`query`), relayed the caller's media after the restart, took the BYE's
`delete` and finalised the recording; each of its calls is in two parts in the index (part 1
`interrupted`, recovered at start-up; part 2 `complete`, `series_id` = part 1's id,
docs/recording.md "Parts"), each file tshark reads, part 1 with the packets from before the
kill and part 2 with later ones; every file is one object version in the bucket, PUT once;
`rtpvault search` with only the index and the bucket in its config, run from a directory of
its own, finds every part of every call.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dpkt
import pytest
import redis
from sqlalchemy import select

from storage.db import open_index
from storage.models import Recording, Upload
from tests.integration.recording.conftest import tshark_read
from tests.integration.redis.rig import kill9, machine_db
from tests.support import daemons
from tests.support.daemons import Daemon
from tests.support.db import pg_database
from tests.support.s3 import MotoServer, s3  # noqa: F401  (fixture)
from tests.support.tools import free_port, free_port_range
from tests.support.wait import wait_for

from .capture import LoopbackCapture, UdpPacket, read_udp
from .sipcall import (
    HOST,
    CallResult,
    CallSpec,
    relay_command_counts,
    run_calls,
    sipp_pcap,
    start_kamailio,
)
from .test_node_set import (
    FLAGS,
    NODE_ADDRESSES,
    RETR,
    TOUT_MS,
    TWO_NODES_CFG,
    capture_filter,
    kamailio_pick,
    media_from_node,
    ng,
    rtp_packets,
)

pytestmark = pytest.mark.integration

NAMES = ("node-a", "node-b")
VICTIM, SURVIVOR = 0, 1
BUCKET = "e2e"
KEY = b"rtpvault:call:"  # docs/design/redis-state.md
MEDIA_PACKETS = 600  # 12 s of 20 ms PCMA: the calls span the kill and the restart
FIRST_SEQ = 1000  # the looped pcap's first RTP sequence number (no wrap: 1000 + 600)
CALLS = 4
WORKERS = 2  # each node's num-threads: the CI machine's default (one per CPU)
DISABLE_TOUT = 20  # rtpengine_disable_tout: never reached (see the module doc)


def call_ids_prefix() -> str:
    """A sipp -cid_str whose calls 1..CALLS Kamailio gives two to each node."""
    for n in range(100):
        prefix = f"e2e{n}-%u@kamset"
        picks = [kamailio_pick(prefix.replace("%u", str(i))) for i in range(1, CALLS + 1)]
        if picks.count(0) == picks.count(1) == CALLS // 2:
            return prefix
    raise AssertionError("unreachable")


def looped_pcap(dst: Path, packets: int) -> Path:
    """sipp's g711a.pcap (7 s) played in a loop to `packets` packets of 20 ms: RTP sequence
    numbers and timestamps go on across the loop, pcap times too."""
    with open(sipp_pcap(), "rb") as f:
        reader = dpkt.pcap.Reader(f)
        link = reader.datalink()
        frames = [buf for _ts, buf in reader]
    assert link == dpkt.pcap.DLT_EN10MB, link
    with open(dst, "wb") as out:
        writer = dpkt.pcap.Writer(out, snaplen=65535, linktype=link)
        for i in range(packets):
            eth = dpkt.ethernet.Ethernet(frames[i % len(frames)])
            ip = eth.data
            udp = ip.data
            rtp = dpkt.rtp.RTP(udp.data)
            rtp.seq = FIRST_SEQ + i
            rtp.ts = (160 * i) & 0xFFFFFFFF
            udp.data = bytes(rtp)
            udp.ulen = 8 + len(udp.data)
            udp.sum = 0
            ip.len = 20 + udp.ulen
            ip.sum = 0
            writer.writepkt(bytes(eth), ts=1_700_000_000 + 0.02 * i)
    return dst


class Node:
    """One rtpvault node, started again on the same command line (ng port, media ports)."""

    def __init__(self, tmp: Path, index: int, url: str, s3_endpoint: str, db: int) -> None:
        self.name = NAMES[index]
        self.index = index
        self.tmp = tmp
        self.ng_port = free_port()
        # below the ephemeral range: no client socket takes a port of a call to restore
        self.port_range = free_port_range(100, NODE_ADDRESSES[index], below_ephemeral=True)
        self.spool = tmp / "spools" / self.name
        self.extra = [
            f"--recording-dir={self.spool}", "--delete-delay=0",
            f"--recording-node={self.name}", f"--recording-db={url}",
            f"--s3-bucket={BUCKET}", f"--s3-endpoint-url={s3_endpoint}", "--s3-region=us-east-1",
            "--s3-prefix={node}/{call_id}/", "--s3-retry-initial=0.2", "--s3-retry-max=1",
            "--s3-keep-local=true", f"--redis=127.0.0.1:6379/{db}",
        ]  # fmt: skip
        self.runs = 0
        self.daemon = self.start()

    def start(self) -> Daemon:
        self.runs += 1
        self.daemon = daemons.start(
            "rtpvault", self.tmp / "run" / f"{self.name}-{self.runs}",
            interface=f"lo/{NODE_ADDRESSES[self.index]}", extra=self.extra, num_threads=WORKERS,
            ng_port=self.ng_port, port_range=self.port_range,
        )  # fmt: skip
        return self.daemon

    def query(self, call_id: str) -> dict[str, Any]:
        return ng(self.daemon, {"command": "query", "call-id": call_id})

    def holds(self, call_id: str) -> bool:
        return bool(self.query(call_id).get("result") == "ok")

    def rtp_in(self, call_id: str) -> int:
        return rtp_packets(self.daemon, call_id)


def _doc(client: redis.Redis, call_id: str) -> dict[str, Any] | None:
    raw = client.get(KEY + call_id.encode())
    return json.loads(raw) if isinstance(raw, bytes) else None


def _ports(reply: dict[str, Any]) -> dict[str, list[Any]]:
    """Each party's local media ports and addresses, as `query` shows them."""
    return {tag: [(st.get("local port"), st.get("local address"))
                  for m in side.get("medias", []) for st in m.get("streams", [])]
            for tag, side in reply["tags"].items()}  # fmt: skip


def _rtp_seqs(path: Path) -> list[int]:
    """RTP sequence numbers of the PCMA packets in a recording, after checking that tshark
    reads every record of it."""
    packets = list(read_udp(path))
    shown = tshark_read(path)
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.splitlines()) == len(packets), (path, shown.stdout[-2000:])
    return [_seq(p) for p in packets if len(p.payload) >= 12 and p.payload[0] >> 6 == 2
            and p.payload[1] & 0x7F == 8]  # fmt: skip


def _runs(seqs: Any) -> list[tuple[int, int]]:
    """Sorted sequence numbers as runs (first, last): where a capture has gaps."""
    runs: list[tuple[int, int]] = []
    for n in sorted(set(seqs)):
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _seq(p: UdpPacket) -> int:
    return int.from_bytes(p.payload[2:4], "big")


def _rows(url: str) -> list[Recording]:
    index = open_index(url, create=False)
    try:
        with index.session() as s:
            rows = list(s.scalars(select(Recording).order_by(Recording.call_id, Recording.part)))
            s.expunge_all()
        return rows
    finally:
        index.close()


def _jobs(url: str) -> dict[str, Upload]:
    index = open_index(url, create=False)
    try:
        with index.session() as s:
            jobs = {j.recording_id: j for j in s.scalars(select(Upload))}
            s.expunge_all()
        return jobs
    finally:
        index.close()


def _until(what: str, check: Callable[[], bool], logs: Callable[[], str]) -> None:
    assert wait_for(check, 30, retry_on=(Exception,)), f"timed out waiting for {what}\n{logs()}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_database()


@pytest.fixture
def redis_dbs() -> Iterator[list[tuple[int, redis.Redis]]]:
    with machine_db() as one, machine_db() as two:
        yield [one, two]


def test_kill9_of_a_node_during_recorded_calls(
    s3: MotoServer,  # noqa: F811 - the fixture
    pg_url: str,
    redis_dbs: list[tuple[int, redis.Redis]],
    tmp_path: Path,
) -> None:
    up = subprocess.run([*daemons.rtpvault_command(), "db", "upgrade", "--db", pg_url],
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert up.returncode == 0, up.stderr
    s3.client.create_bucket(Bucket=BUCKET)
    s3.client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    (tmp_path / "spools").mkdir()
    nodes: list[Node] = []
    kamailio = None
    try:
        for i in range(2):
            nodes.append(Node(tmp_path, i, pg_url, s3.endpoint, redis_dbs[i][0]))
        sock = " ".join(f"udp:{HOST}:{n.ng_port}=1" for n in nodes)
        kamailio = start_kamailio(
            tmp_path / "kamailio", nodes[0].ng_port, cfg=TWO_NODES_CFG,
            defines={
                "RTPENGINE_SOCK": f'"{sock}"', "MANAGE_FLAGS": f'"{FLAGS} record-call=yes"',
                "DISABLE_TOUT": str(DISABLE_TOUT), "TOUT_MS": str(TOUT_MS), "RETR": str(RETR),
                "CTL_SOCKET": f'"unix:{tmp_path / "kamailio" / "ctl.sock"}"',
            },
        )  # fmt: skip
        run_scenario(s3, pg_url, redis_dbs, tmp_path, nodes, kamailio)
    finally:
        if kamailio is not None:
            kamailio.stop()
        for n in nodes:
            n.daemon.stop()


def run_scenario(moto: MotoServer, url: str, dbs: list[tuple[int, redis.Redis]], tmp: Path,
                 nodes: list[Node], kamailio: Any) -> None:  # fmt: skip
    def logs() -> str:
        parts = [f"--- {n.name} run {n.runs}\n{n.daemon.log()[-5000:]}" for n in nodes]
        return "\n".join([*parts, f"--- kamailio\n{kamailio.log()[-4000:]}"])

    victim, survivor = nodes[VICTIM], nodes[SURVIVOR]
    prefix = call_ids_prefix()
    cids = [prefix.replace("%u", str(i)) for i in range(1, CALLS + 1)]
    on_victim = [c for c in cids if kamailio_pick(c) == VICTIM]
    on_survivor = [c for c in cids if kamailio_pick(c) == SURVIVOR]
    pcap = looped_pcap(tmp / "media.pcap", MEDIA_PACKETS)
    spec = CallSpec(calls=CALLS, media=True, pcap=pcap, media_packets=None, call_id=prefix)
    results: list[CallResult | BaseException] = []

    def calls() -> None:
        try:
            results.append(run_calls(kamailio, spec, tmp / "sipp"))
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            results.append(exc)

    sipp = threading.Thread(target=calls)
    victim_client = dbs[VICTIM][1]
    with LoopbackCapture(tmp / "media-seen.pcap", capture_filter([n.daemon for n in nodes])) as cap:
        sipp.start()
        try:
            # every call up on its node, recording, its state (with the recording) in Redis,
            # media flowing
            _until("calls on their nodes", lambda: all(victim.holds(c) for c in on_victim)
                   and all(survivor.holds(c) for c in on_survivor), logs)  # fmt: skip
            _until("the victim's calls in Redis with their recording", lambda: all(
                (d := _doc(victim_client, c)) is not None and len(d["ng"]) == 2
                and d["extra"].get("recording") for c in on_victim), logs)  # fmt: skip
            _until("media recorded", lambda: all(victim.rtp_in(c) >= 50 for c in on_victim)
                   and all(survivor.rtp_in(c) >= 50 for c in on_survivor), logs)  # fmt: skip
            before = {c: survivor.rtp_in(c) for c in on_survivor}
            held = {c: _ports(victim.query(c)) for c in on_victim}
            kill9(victim.daemon)
            killed_at = time.monotonic()
            victim.start()
            restarted_in = time.monotonic() - killed_at
            # node-a restored its calls from Redis: the same parties on the same ports
            for c in on_victim:
                reply = victim.query(c)
                assert reply.get("result") == "ok", (c, reply, logs())
                assert _ports(reply) == held[c], (c, _ports(reply), held[c])
            _until("media relayed by the restored node",
                   lambda: all(victim.rtp_in(c) > 0 for c in on_victim), logs)  # fmt: skip
            # node-b's calls kept their media meanwhile
            assert all(survivor.rtp_in(c) > before[c] for c in on_survivor), logs()
        finally:
            sipp.join(120)
    (result,) = results
    if isinstance(result, BaseException):
        raise result
    assert result.ok, result.describe() + logs()
    print(f"node-a killed and back with {len(on_victim)} calls restored in {restarted_in:.2f} s")
    # each worker restored the calls it owns (docs/design/redis-state.md), none skipped
    restores = re.findall(r"Redis restore \(worker \d+\): (\d+) calls restored, (\d+) skipped",
                          victim.daemon.log())  # fmt: skip
    assert len(restores) == WORKERS, logs()
    assert [sum(int(r[i]) for r in restores) for i in (0, 1)] == [len(on_victim), 0], restores
    # Kamailio never found node-a dead: no failed command, no node disabled
    assert "can't send command" not in kamailio.log(), kamailio.log()
    assert "timeout waiting reply" not in kamailio.log(), kamailio.log()
    # the BYEs' deletes reached the node that has each call
    assert relay_command_counts(victim.daemon)["delete"] == len(on_victim), logs()
    assert relay_command_counts(survivor.daemon)["delete"] == len(on_survivor), logs()
    # and the call state is gone from both Redis DBs
    for _db, client in dbs:
        _until("Redis keys deleted", lambda c=client: not list(c.scan_iter(KEY + b"*")), logs)

    # media: node-b relayed every packet of its calls; node-a relayed packets after the restart
    packets = cap.packets()
    to_callee = [[p for p in media_from_node(packets, n.daemon, NODE_ADDRESSES[n.index])
                  if p.dst == result.uas_media] for n in nodes]  # fmt: skip
    assert len(to_callee[SURVIVOR]) == MEDIA_PACKETS * len(on_survivor), len(to_callee[SURVIVOR])

    # the index: node-b one complete part per call, node-a two parts per call
    def settled() -> bool:
        rows = _rows(url)
        return len(rows) == len(on_survivor) + 2 * len(on_victim) and all(
            r.status != "recording" and r.archive_state == "archived" for r in rows
        )

    _until("every part indexed, finalised and archived", settled, logs)
    rows = _rows(url)
    by_call: dict[str, list[Recording]] = {}
    for r in rows:
        by_call.setdefault(r.call_id, []).append(r)
    assert sorted(by_call) == sorted(cids)
    for c in on_survivor:
        (only,) = by_call[c]
        assert (only.node, only.part, only.status) == ("node-b", 1, "complete")
        assert only.codecs == "PCMA", only.codecs
        assert only.series_id in (None, only.id)
        assert len(_rtp_seqs(Path(only.path))) == 2 * MEDIA_PACKETS  # both directions
    for c in on_victim:
        one, two = by_call[c]
        assert (one.node, one.part, one.status) == ("node-a", 1, "interrupted"), logs()
        assert (two.node, two.part, two.status) == ("node-a", 2, "complete"), logs()
        assert one.series_id in (None, one.id) and two.series_id == one.id
        # the codec the streams used (PCMA; the caller offered PCMU and telephone-event too)
        assert one.codecs == two.codecs == "PCMA", (one.codecs, two.codecs)
        assert Path(one.path).name != Path(two.path).name
        for r in (one, two):
            assert Path(r.path).is_relative_to(victim.spool), r.path
        seqs_one, seqs_two = _rtp_seqs(Path(one.path)), _rtp_seqs(Path(two.path))
        assert seqs_one and seqs_two, (seqs_one, seqs_two)
        # part 1: media from before the kill; part 2: media after the restart, later packets
        assert max(seqs_one) < min(seqs_two), (max(seqs_one), min(seqs_two))
        # node-a relayed the caller's packets to the callee (from the port the callee's echo
        # reaches in this call: its recording's callee-side port) up to the kill and again
        # from the restart: two runs of sequence numbers, the outage between them
        (port,) = {p.dst[1] for p in read_udp(Path(two.path)) if p.src == result.uas_media}
        relayed = {_seq(p) for p in to_callee[VICTIM] if p.src[1] == port}
        runs = _runs(relayed)
        assert len(runs) == 2 and runs[-1][1] == FIRST_SEQ + MEDIA_PACKETS - 1, runs
        (first, last_before), (back, last) = runs
        # part 2 holds every packet relayed after the restart (both directions: the echo)
        assert _runs(seqs_two) == [(back, last)] and len(seqs_two) == 2 * (last - back + 1)
        # part 1 what node-a had written when it was killed: the start of the first run (the
        # packets of its last flush interval are lost with the process)
        assert _runs(seqs_one)[0][0] == first and len(_runs(seqs_one)) == 1, _runs(seqs_one)
        unflushed = last_before - max(seqs_one)
        assert 0 <= unflushed < last_before - first, (runs, _runs(seqs_one))
        print(
            f"{c}: part 1 {first}-{max(seqs_one)} ({unflushed} relayed packets not on "
            f"disk at the kill), outage {last_before + 1}-{back - 1}, part 2 {back}-{last}"
        )
    assert "call restored: recording" in victim.daemon.log(), logs()
    assert "Established initial connection to Redis 127.0.0.1:6379" in victim.daemon.log()

    # the bucket: each part one object version, PUT once, under its node's prefix
    versions = moto.client.list_object_versions(Bucket=BUCKET).get("Versions", [])
    recordings = sorted(v["Key"] for v in versions if not v["Key"].startswith("audit/"))
    assert recordings == sorted(str(r.object_key) for r in rows)
    jobs = _jobs(url)
    for r in rows:
        assert str(r.object_key).startswith(f"{r.node}/"), r.object_key
        assert moto.requests("PUT", BUCKET, str(r.object_key)) == 1, r.object_key
        assert r.object_sha256 == r.sha256 and r.sha256
        assert jobs[r.id].state == "done"

    # search from a third directory with only the index and the bucket configured
    desk = tmp / "desk"
    desk.mkdir()
    conf = desk / "rtpengine.conf"
    conf.write_text("\n".join([
        "[rtpengine]", "interface = eth9/198.51.100.77", f"recording-db = {url}",
        f"s3-bucket = {BUCKET}", f"s3-endpoint-url = {moto.endpoint}", "s3-region = us-east-1",
    ]) + "\n")  # fmt: skip
    for c in cids:
        found = subprocess.run(
            [*daemons.rtpvault_command(), "search", "--config-file", str(conf), "--call-id", c,
             "--limit", "0", "--json"],
            cwd=desk, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert found.returncode == 0, found.stderr
        got = sorted((f["id"], f["node"], f["part"], f["series"])
                     for f in json.loads(found.stdout))  # fmt: skip
        first = by_call[c][0].id
        assert got == sorted((r.id, r.node, r.part, first) for r in by_call[c]), found.stdout
