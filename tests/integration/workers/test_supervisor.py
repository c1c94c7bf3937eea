"""The supervisor of `num-threads = 2` workers (rtpvault.supervisor, issue 18 items 1 and 5):
start-up failures end the daemon with one process's exit status and leave no worker behind;
SIGTERM ends every worker's calls (recordings `complete`) and exits 0; a worker killed with -9
is forked again and serves; `ping`, `list` and `statistics` answer the same from either worker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import open_index
from storage.models import Recording
from tests.integration.recording.conftest import sidecars, tshark_read
from tests.integration.recording.media import Call
from tests.support import daemons
from tests.support.tools import free_port, free_port_range, udp_port_free
from tests.support.wait import wait_for

from .workers import client_on_worker, owned_call_ids, wait_workers, worker_pids

pytestmark = pytest.mark.integration


def run(*extra: str, ng: int) -> subprocess.CompletedProcess[str]:
    pmin, pmax = free_port_range(20)
    command = [
        *daemons.rtpvault_command(), "run", "--config-file=none", "--foreground", "--table=-1",
        "--interface=lo/127.0.0.1", f"--port-min={pmin}", f"--port-max={pmax}",
        f"--listen-ng=127.0.0.1:{ng}", "--num-threads=2", *extra,
    ]  # fmt: skip
    # the timeout is a hang guard: each of these exits at start-up
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "so-reuseport"])
def test_listen_ng_held_by_another_program_exits_255(reuse_port: bool) -> None:
    """A program holding the port with SO_REUSEPORT (same user) would let the workers join its
    group and share its requests: the supervisor's own bind check refuses that too."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        if reuse_port:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        port = other.getsockname()[1]
        out = run(ng=port)
    assert out.returncode == 255, out.stderr
    assert f"Fatal error: ng (UDP) on 127.0.0.1:{port}: address already in use" in out.stderr
    assert "worker 0 started" not in out.stderr and "Traceback" not in out.stderr


def test_bad_configuration_exits_1() -> None:
    out = run("--port-min=abc", ng=free_port())
    assert out.returncode == 1
    assert "port-min" in out.stderr and "Traceback" not in out.stderr


def test_a_worker_that_cannot_start_ends_the_daemon_with_its_status(tmp_path: Path) -> None:
    """The workers start their parts themselves: the recording spool being a file stops each
    with 255 (as one process), and the supervisor ends with it, no worker left behind."""
    spool = tmp_path / "spool"
    spool.write_text("not a directory")
    port = free_port()
    out = run(f"--recording-dir={spool}", "--log-stderr", ng=port)
    assert out.returncode == 255, out.stderr
    assert "is not a directory" in out.stderr and "Traceback" not in out.stderr
    assert udp_port_free(port)


def test_sigterm_ends_every_workers_calls_and_exits_0(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    extra = [f"--recording-dir={spool}", "--recording-method=pcap", "--delete-delay=0"]
    d = daemons.start("rtpvault", tmp_path / "run", num_threads=2, extra=extra)
    calls: list[Call] = []
    try:
        pids = wait_workers(d, 2)
        for owner in (0, 1):
            for call_id in owned_call_ids(owner, 2, f"term{owner}"):
                c = Call(d, call_id)
                calls.append(c)
                c.offer(**{"record-call": "yes"})
                c.answer()
                c.media(10)
                c.relayed(10)
        assert d.stop() == 0, d.log()[-3000:]
    finally:
        for c in calls:
            c.close()
        d.stop()
    for pid in pids.values():  # reaped by the supervisor, not orphaned
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert udp_port_free(d.ng_port)
    docs = sidecars(spool)
    assert sorted(doc["call_id"] for doc in docs) == sorted(c.call_id for c in calls)
    assert {doc["status"] for doc in docs} == {"complete"}
    for doc in docs:
        assert tshark_read(Path(doc["path"])).returncode == 0
    index = open_index(f"sqlite:///{spool}/recordings.db", create=False)
    try:
        with index.session() as s:
            rows = s.scalars(select(Recording)).all()
            assert sorted(r.call_id for r in rows) == sorted(c.call_id for c in calls)
            assert {(r.status, r.packets) for r in rows} == {("complete", 20)}
    finally:
        index.close()


def test_a_killed_worker_is_forked_again_and_serves(tmp_path: Path) -> None:
    d = daemons.start("rtpvault", tmp_path, num_threads=2)
    try:
        before = wait_workers(d, 2)
        os.kill(before[1], signal.SIGKILL)
        after = wait_workers(d, 2, not_pids=frozenset({before[1]}))
        assert after[0] == before[0]
        assert f"worker 1 (pid {before[1]}) killed by signal 9 (SIGKILL)" in d.log()
        # the new worker 1 owns its calls again, whichever worker a request reaches
        for index in (0, 1):
            client = client_on_worker(d, index)
            try:
                for owner in (0, 1):
                    [call_id] = owned_call_ids(owner, 1, f"again{index}")
                    r = client.call({"command": "offer", "call-id": call_id, "from-tag": "ft",
                                     "sdp": "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
                                            "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                                            "m=audio 4000 RTP/AVP 0\r\n"})  # fmt: skip
                    assert r["result"] == "ok", r
            finally:
                client.close()
        assert worker_pids(d) == after
    finally:
        assert d.stop() == 0


def test_ping_list_and_statistics_from_either_worker(tmp_path: Path) -> None:
    d = daemons.start("rtpvault", tmp_path, num_threads=2)
    calls = []
    try:
        for owner in (0, 1):
            for call_id in owned_call_ids(owner, 2, f"list{owner}"):
                c = Call(d, call_id)
                calls.append(c)
                c.offer()
        expected = sorted(c.call_id for c in calls)
        answers = []
        for index in (0, 1):
            client = client_on_worker(d, index)
            try:
                assert client.call({"command": "ping"}) == {"result": "pong"}
                assert sorted(client.call({"command": "list"})["calls"]) == expected
                stats = client.call({"command": "statistics"})["statistics"]
                answers.append(stats["currentstatistics"])
            finally:
                client.close()
        assert answers[0] == answers[1]
        assert int(answers[0]["sessionsown"]) == len(calls), answers
    finally:
        for c in calls:
            c.close()
        assert d.stop() == 0


def gone(pid: int) -> bool:
    """Ended: no such process, or a zombie nobody reaps (PID 1 of a container may not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_kill9_of_the_supervisor_ends_its_workers(tmp_path: Path) -> None:
    """As kill -9 of rtpengine ends all its threads: no worker goes on with its calls (its
    recordings are then recovered as `interrupted` at the next start) or keeps the ports."""
    d = daemons.start("rtpvault", tmp_path, num_threads=2)
    try:
        pids = wait_workers(d, 2)
        d.proc.kill()
        d.proc.wait(10)
        assert wait_for(lambda: all(gone(p) for p in pids.values()), 10), pids
        assert udp_port_free(d.ng_port)
    finally:
        for pid in pids.values():
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
