"""Several nodes, one store (issue 20 item 1, docs/storage.md "Several nodes"): three real
`rtpvault run` daemons, each with its own recording-node, interface address (127.0.0.2-4), port
range and spool, on one PostgreSQL index and one (versioned) moto bucket.

Recorded calls on every node end as one row each, with that node's name, and one object each
(one version, one PUT), under that node's key prefix. Node C's uploader cannot reach S3 at
first: its jobs wait for it while A and B, idle and healthy, leave them alone; C started again
with the right endpoint stores them, once.

Then "another machine": the CLI with only the index and bucket in its config, run in a mount
namespace where the nodes' folders are covered by an empty tmpfs (their paths do not exist
there), sees every node's recordings (search, show), fetches and verifies them from S3, and two
purges run at the same moment purge each recording once; the nodes' daemons remove the files
that purge could not reach, and the rows.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from storage.db import open_index
from storage.models import Recording, Upload
from tests.integration.recording.media import Call, rtp
from tests.support import daemons
from tests.support.db import pg_database
from tests.support.s3 import MotoServer
from tests.support.tools import free_port, unavailable
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

BUCKET = "fleet"
CALLS = 4  # recorded calls per node
NODES = {"node-a": "127.0.0.2", "node-b": "127.0.0.3", "node-c": "127.0.0.4"}
KEEP_LOCAL = {"node-a": "true", "node-b": "false", "node-c": "true"}


class NodeCall(Call):
    """A call through a relay whose interface is `host` (not 127.0.0.1)."""

    def __init__(self, daemon: daemons.Daemon, call_id: str, host: str) -> None:
        super().__init__(daemon, call_id)
        self.host = host

    def media(self, n: int, start: int = 0, rtcp: bool = False, interval: float = 0.002) -> None:
        for i in range(start, start + n):
            self.caller.rtp.sendto(rtp(100 + i, 160 * i, 0xAAAA0001),
                                   (self.host, self.caller.relay_port))  # fmt: skip
            self.callee.rtp.sendto(rtp(500 + i, 160 * i, 0xBBBB0002),
                                   (self.host, self.callee.relay_port))  # fmt: skip


def start_node(tmp: Path, node: str, url: str, endpoint: str, run: str) -> daemons.Daemon:
    extra = [
        f"--recording-dir={tmp / 'nodes' / node}", "--recording-format=eth", "--delete-delay=0",
        f"--recording-node={node}", f"--recording-db={url}", f"--s3-bucket={BUCKET}",
        f"--s3-endpoint-url={endpoint}", "--s3-region=us-east-1", "--s3-prefix={node}/{call_id}/",
        "--s3-retry-initial=0.2", "--s3-retry-max=1", f"--s3-keep-local={KEEP_LOCAL[node]}",
    ]  # fmt: skip
    return daemons.start("rtpvault", tmp / "run" / f"{node}-{run}",
                         interface=f"lo/{NODES[node]}", extra=extra, num_threads=1)  # fmt: skip


def record_calls(d: daemons.Daemon, node: str) -> list[str]:
    ids = []
    for i in range(CALLS):
        c = NodeCall(d, f"{node}-{i}@192.0.2.1", NODES[node])
        try:
            assert f"c=IN IP4 {NODES[node]}" in c.offer(**{"record-call": "yes"})["sdp"]
            c.answer()
            c.media(20)
            c.relayed(20)
            c.delete()
        finally:
            c.close()
        ids.append(c.call_id)
    return ids


def rows_of(index: Any) -> list[Recording]:
    with index.session() as s:
        rows = list(s.scalars(select(Recording).order_by(Recording.call_id)))
        s.expunge_all()
    return rows


def archived_paths(log: str) -> set[str]:
    return set(re.findall(r"archived (\S+) to s3://", log))


def puts_and_deletes(s3: MotoServer, key: str) -> tuple[int, int]:
    return s3.requests("PUT", BUCKET, key), s3.requests("DELETE", BUCKET, key)


def elsewhere(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`rtpvault ARGS` as on another host: the nodes' folders are not there (an empty tmpfs
    over them in a private mount namespace), its working directory is its own."""
    return subprocess.run(elsewhere_cmd(tmp, *args), cwd=tmp / "desk", capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def elsewhere_cmd(tmp: Path, *args: str) -> list[str]:
    return [*_unshare(), "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"',
            str(tmp / "nodes"), *daemons.rtpvault_command(), *args]  # fmt: skip


def on_host_of_cmd(tmp: Path, node: str, *args: str) -> list[str]:
    """`rtpvault ARGS` as on `node`'s host where every node has the same recording-dir path:
    `node`'s spool is seen at every node's path (bind mounts in a private mount namespace)."""
    others = [str(tmp / "nodes" / n) for n in NODES if n != node]
    script = ('src=$0; while [ "$1" != -- ]; do mount --bind "$src" "$1" || exit 97; shift; '
              'done; shift; exec "$@"')  # fmt: skip
    return [*_unshare(), "sh", "-c", script, str(tmp / "nodes" / node), *others, "--",
            *daemons.rtpvault_command(), *args]  # fmt: skip


def _unshare() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        unavailable("unshare (util-linux) not installed")
    return [str(unshare), "-m"]


def test_three_nodes_one_index_one_bucket(s3: MotoServer, tmp_path: Path) -> None:
    url = next(gen := pg_database())
    try:
        run_three_nodes(s3, tmp_path, url)
    finally:
        gen.close()


def run_three_nodes(s3: MotoServer, tmp: Path, url: str) -> None:
    up = subprocess.run([*daemons.rtpvault_command(), "db", "upgrade", "--db", url],
                        capture_output=True, text=True)  # fmt: skip
    assert up.returncode == 0, up.stderr
    s3.client.create_bucket(Bucket=BUCKET)
    s3.client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    (tmp / "nodes").mkdir()  # each daemon creates its spool inside, as rtpengine does
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: node-c's uploads fail at first
    nodes = {n: start_node(tmp, n, url, dead if n == "node-c" else s3.endpoint, "1")
             for n in NODES}  # fmt: skip
    logs: dict[str, str] = {}
    index = open_index(url, create=False)
    try:
        calls = {n: record_calls(d, n) for n, d in nodes.items()}

        def ab_archived_c_waiting() -> bool:
            rows = rows_of(index)
            with index.session() as s:
                tried = s.scalar(select(func.min(Upload.attempts)).join(
                    Recording, Recording.id == Upload.recording_id).where(
                    Recording.node == "node-c"))  # fmt: skip
            return len(rows) == 3 * CALLS and all(
                r.archive_state == ("pending" if r.node == "node-c" else "archived")
                for r in rows) and (tried or 0) >= 2  # fmt: skip

        assert wait_for(ab_archived_c_waiting, 90, retry_on=(Exception,)), nodes["node-c"].log()
        for n in ("node-a", "node-b"):  # idle and healthy: they never touched node-c's jobs
            assert not any("/node-c/" in p for p in archived_paths(nodes[n].log()))
        logs["node-c"] = nodes["node-c"].log()
        nodes["node-c"].stop()
        nodes["node-c"] = start_node(tmp, "node-c", url, s3.endpoint, "2")
        assert wait_for(lambda: {r.archive_state for r in rows_of(index)} == {"archived"}, 90,
                        retry_on=(Exception,)), nodes["node-c"].log()  # fmt: skip
        rows = rows_of(index)
        with index.session() as s:
            jobs = {j.recording_id: j for j in s.scalars(select(Upload))}
            s.expunge_all()

        # every call indexed once, with its node; every object stored once under its node
        assert [r.call_id for r in rows] == sorted(c for ids in calls.values() for c in ids)
        versions = s3.client.list_object_versions(Bucket=BUCKET).get("Versions", [])
        assert sorted(v["Key"] for v in versions) == sorted(str(r.object_key) for r in rows)
        for r in rows:
            node = r.call_id.split("-")[0] + "-" + r.call_id.split("-")[1]
            assert r.node == node and r.status == "complete"
            assert r.path.startswith(str(tmp / "nodes" / node) + "/")
            assert str(r.object_key).startswith(f"{node}/")
            assert r.object_sha256 == r.sha256 and r.sha256
            assert jobs[r.id].state == "done"
            assert jobs[r.id].attempts == 1 or node == "node-c"
            assert puts_and_deletes(s3, str(r.object_key)) == (1, 0)
            assert r.local_removed == (KEEP_LOCAL[node] == "false")
        # each node's uploader stored its own recordings and no other node's
        logs.update({n: logs.get(n, "") + d.log() for n, d in nodes.items()})
        for n in NODES:
            assert archived_paths(logs[n]) == {r.path for r in rows if r.node == n}, n

        from_another_host(s3, tmp, url, rows, nodes)
    finally:
        index.close()
        for d in nodes.values():
            d.stop()


def from_another_host(s3: MotoServer, tmp: Path, url: str, rows: list[Recording],
                      nodes: dict[str, daemons.Daemon]) -> None:  # fmt: skip
    (tmp / "desk").mkdir()
    conf = tmp / "desk" / "rtpengine.conf"
    conf.write_text("\n".join([
        "[rtpengine]", "interface = eth9/198.51.100.77", f"recording-db = {url}",
        f"s3-bucket = {BUCKET}", f"s3-endpoint-url = {s3.endpoint}", "s3-region = us-east-1",
    ]) + "\n")  # fmt: skip
    cfg = ("--config-file", str(conf))
    probe = elsewhere(tmp, "search", *cfg, "--limit", "0", "--json")
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert sorted((f["call_id"], f["node"]) for f in found) == sorted(
        (r.call_id, r.node) for r in rows)  # fmt: skip
    for n in NODES:
        shown = elsewhere(tmp, "show", *cfg, f"{n}-0@192.0.2.1", "--json")
        assert shown.returncode == 0, shown.stderr
        doc = json.loads(shown.stdout)
        assert (doc["recording"]["node"], doc["archive"]["state"]) == (n, "archived")

    # fetch: the local copies are on the nodes, so each comes from S3, checked
    fetched = elsewhere(tmp, "fetch", *cfg, *(r.id for r in rows), "-o", "out")
    assert fetched.returncode == 0, fetched.stderr
    for r in rows:
        assert f"from s3://{BUCKET}/{r.object_key}" in fetched.stdout
        data = (tmp / "desk" / "out" / Path(r.path).name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r.sha256
    checked = elsewhere(tmp, "verify", *cfg)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"verified {3 * CALLS} recordings, {3 * CALLS} copies: 0 problems" in checked.stdout
    # on node-a's host, where node-c's recording-dir path is node-a's spool (marked node-a):
    # node-a's local copies are re-hashed too, node-c's are not called missing
    on_a = subprocess.run(on_host_of_cmd(tmp, "node-a", "verify", *cfg), capture_output=True,
                          text=True, cwd=tmp / "desk")  # fmt: skip
    assert on_a.returncode == 0, on_a.stdout + on_a.stderr
    assert f"verified {3 * CALLS} recordings, {4 * CALLS} copies: 0 problems" in on_a.stdout

    held = rows[0]
    hold = elsewhere(tmp, "hold", *cfg, held.id, "--reason", "case 20")
    assert hold.returncode == 0, hold.stderr

    # two purges at the same moment: one on a host without the nodes' files, one on node-a's
    purge = ("purge", *cfg, "--older-than", "0s")
    procs = [subprocess.Popen(cmd, cwd=tmp / "desk", stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for cmd in (elsewhere_cmd(tmp, *purge), on_host_of_cmd(tmp, "node-a", *purge))]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    purged = [re.findall(r"^purged ([0-9a-f-]{36}) ", out, re.M) for out, _ in outs]
    assert not set(purged[0]) & set(purged[1])
    assert sorted(purged[0] + purged[1]) == sorted(r.id for r in rows if r.id != held.id)
    for out, _ in outs:
        assert "kept 1 on hold" in out
    left_to = dict(re.findall(r"^purged ([0-9a-f-]{36}) .*its files are on node ([\w-]+)",
                              outs[0][0] + outs[1][0], re.M))  # fmt: skip
    direct = set(purged[1]) - set(left_to)  # purged on node-a's host: its own files, at once
    assert {rid: next(r.node for r in rows if r.id == rid) for rid in left_to} == left_to
    assert all(next(r.node for r in rows if r.id == rid) == "node-a" for rid in direct)
    assert set(purged[0]) <= set(left_to)  # the host without spools reaches no file
    print(f"purge: {len(purged[0])} + {len(purged[1])} recordings; {len(left_to)} left to "
          f"their node's daemon, {len(direct)} removed at once on node-a")
    left = {r.id: r for r in rows if r.id != held.id}
    for r in left.values():  # each object version deleted once, by one of the two
        assert puts_and_deletes(s3, str(r.object_key)) == (1, 1)
    versions = s3.client.list_object_versions(Bucket=BUCKET).get("Versions", [])
    recordings = [v["Key"] for v in versions if not v["Key"].startswith("audit/")]  # checkpoints
    assert recordings == [held.object_key]

    # the nodes remove what purge could not reach: their files, then the rows
    index = open_index(url, create=False)
    try:
        swept = wait_for(lambda: [r.id for r in rows_of(index)] == [held.id], 60,
                         retry_on=(Exception,))  # fmt: skip
        assert swept, [d.log()[-2000:] for d in nodes.values()]
    finally:
        index.close()
    for r in left.values():
        for p in (r.path, r.metadata_path, r.sidecar_path):
            assert p is None or not Path(p).exists(), p
    assert Path(held.path).exists()

    def swept_by_nodes() -> int:  # logged right after each node's commit
        return sum(int(n) for d in nodes.values() for n in re.findall(
            r"removed the files and rows of (\d+) recording", d.log()))  # fmt: skip

    assert wait_for(lambda: swept_by_nodes() == len(left_to), 30)
    audit = elsewhere(tmp, "audit", *cfg, "--action", "purge-files", "--json")
    assert audit.returncode == 0, audit.stderr
    assert sorted((e["recording_id"], e["user"]) for e in json.loads(audit.stdout)) == sorted(
        (rid, f"rtpvault@{node}") for rid, node in left_to.items())  # fmt: skip
