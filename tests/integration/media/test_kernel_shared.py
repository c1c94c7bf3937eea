"""`table >= 0` with worker processes (issue 18): one nftables table made by the supervisor
(relay.media.ruleset.create_shared_table), each worker's kernel plane attached to it with its
own marks (open_kernel_plane(..., worker=(index, count))).

The workers are real processes (tests/integration/media/kernel_worker.py) in the relay
namespace. A worker stopped with SIGSTOP cannot forward in userspace, so a packet that still
arrives was forwarded by the kernel.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.media.ruleset import (
    create_shared_table,
    delete_shared_table,
    purge_worker,
    worker_marks,
)

from . import test_kernel_plane
from .daemon_rig import HOST_PORT, Host, rtp
from .netns import Topology, ip

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
topo = test_kernel_plane.topo  # the relay namespace routes, hosts a, b, c around it
nft = test_kernel_plane.nft


class Worker:
    """One kernel_worker process: a call between `a` and `b` offloaded by worker `index`."""

    def __init__(self, topo: Topology, work: Path, index: int, count: int, a: Host, b: Host):
        self.log_path = work / f"worker{index}-{time.monotonic_ns()}.log"
        peers = [f"{h.sock.getsockname()[0]}:{h.sock.getsockname()[1]}" for h in (a, b)]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", topo.hosts["relay"].name, sys.executable, "-m",
                 "tests.integration.media.kernel_worker", "0", str(index), str(count),
                 topo.relay_address("a"), *peers],
                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            )  # fmt: skip
        ready = self._line(30)
        assert ready, f"worker {index} did not start: {self.log()}"
        info = json.loads(ready)
        self.ports: tuple[int, int] = tuple(info["ports"])  # type: ignore[assignment]
        self.offloaded: int = info["offloaded"]
        self.why_not: str = info["why_not"]

    def _line(self, deadline: float) -> str:
        assert self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], deadline)[0]:
            return ""
        return self.proc.stdout.readline().strip()

    def log(self) -> str:
        return self.log_path.read_text()

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL, stopped or not: no clean-up of any kind
            self.proc.wait(10)

    def close(self) -> None:
        """`close` on stdin: the plane stops, the call ends, the process exits 0."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("close\n")
        self.proc.stdin.flush()
        assert self._line(30) == "closed", self.log()
        assert self.proc.wait(10) == 0


def table_ports(topo: Topology, workers: int = 2) -> dict[int, tuple[int, int]]:
    """Relay port → (worker, mark) of every element of the workers' `streams_i` maps."""
    found = {}
    for i in range(workers):
        out = nft(topo, "-j", "list", "map", "ip", "rtpvault", f"streams_{i}")
        assert out.returncode == 0, out.stderr
        for item in json.loads(out.stdout)["nftables"]:
            for el in item.get("map", {}).get("elem", []):
                found[el[0]["elem"]["val"]["concat"][3]] = (i, el[1])
    return found


def relayed(a: Host, b: Host, ports: tuple[int, int], base: int) -> bool:
    """10 packets each way through the relay ports (facing a, facing b) all arrive, in order,
    from the relay's other port."""
    for seq in range(base, base + 10):
        a.send(ports[0], rtp(seq, ssrc=0xA))
        b.send(ports[1], rtp(seq, ssrc=0xB))
    got_b, got_a = b.drain(0.5), a.drain(0.5)
    return got_b == [rtp(s, ssrc=0xA) for s in range(base, base + 10)] and got_a == [
        rtp(s, ssrc=0xB) for s in range(base, base + 10)
    ]


@pytest.fixture
def shared(topo: Topology) -> Iterator[Topology]:
    """The supervisor's part: the shared table exists for the test, and is deleted after."""
    with topo.hosts["relay"].entered():
        assert create_shared_table(0, 2) is None
    try:
        yield topo
    finally:
        with topo.hosts["relay"].entered():
            delete_shared_table(0)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.kill()


def hosts_on(topo: Topology, names: str, port: int) -> list[Host]:
    return [Host(topo, n, port=port) for n in names]


def test_two_worker_processes_offload_into_one_table_and_survive_each_other(
    shared: Topology, workers: list[Worker], tmp_path: Path
) -> None:
    topo = shared
    a0, b0 = hosts_on(topo, "ab", HOST_PORT)
    a1, b1 = hosts_on(topo, "ab", HOST_PORT + 10)
    try:
        w0 = Worker(topo, tmp_path, 0, 2, a0, b0)
        w1 = Worker(topo, tmp_path, 1, 2, a1, b1)
        workers += [w0, w1]
        assert (w0.why_not, w0.offloaded, w1.why_not, w1.offloaded) == ("", 2, "", 2)
        owners = table_ports(topo)
        assert set(owners) == {*w0.ports, *w1.ports}
        assert all(owners[p][0] == 0 and owners[p][1] in worker_marks(0, 2) for p in w0.ports)
        assert all(owners[p][0] == 1 and owners[p][1] in worker_marks(1, 2) for p in w1.ports)
        # neither process can read a socket: what arrives was forwarded by the kernel
        w0.pause()
        w1.pause()
        assert relayed(a0, b0, w0.ports, 1)
        assert relayed(a1, b1, w1.ports, 1)
        # worker 0 dies without any clean-up: worker 1's streams carry on in the kernel
        w0.kill()
        assert relayed(a1, b1, w1.ports, 20)
        # ... and so do worker 0's (nothing removed them yet), until its successor attaches
        assert relayed(a0, b0, w0.ports, 20)
        w0b = Worker(topo, tmp_path, 0, 2, a0, b0)
        workers.append(w0b)
        assert "removed 2 stream(s) a previous worker 0 left in table ip rtpvault" in w0b.log()
        assert set(table_ports(topo)) == {*w0b.ports, *w1.ports}
        a0.send(w0.ports[0], rtp(40, ssrc=0xA))
        b0.send(w0.ports[1], rtp(40, ssrc=0xB))
        assert b0.drain(0.5) == [] and a0.drain(0.5) == []
        w0b.pause()
        assert relayed(a0, b0, w0b.ports, 50)
        assert relayed(a1, b1, w1.ports, 50)
        # the supervisor, seeing worker 0 die again, removes its elements at once
        w0b.kill()
        with topo.hosts["relay"].entered():
            assert purge_worker(0, 0) == 2
            assert purge_worker(0, 0) == 0
        assert set(table_ports(topo)) == set(w1.ports)
        a0.send(w0b.ports[0], rtp(60, ssrc=0xA))
        assert b0.drain(0.5) == []
        assert relayed(a1, b1, w1.ports, 60)
        # a worker that exits cleanly takes its own elements, not the table or the others'
        w0c = Worker(topo, tmp_path, 0, 2, a0, b0)
        workers.append(w0c)
        assert "previous worker" not in w0c.log()
        w1.resume()
        w1.close()
        assert set(table_ports(topo)) == set(w0c.ports)
        assert "worker 1's elements removed from table ip rtpvault" in w1.log()
        w0c.pause()
        assert relayed(a0, b0, w0c.ports, 70)
        w0c.resume()
        w0c.close()
        assert table_ports(topo) == {}
        # the supervisor's exit deletes the table; again is harmless
        with topo.hosts["relay"].entered():
            delete_shared_table(0)
            delete_shared_table(0)
        assert nft(topo, "list", "table", "ip", "rtpvault").returncode != 0
    finally:
        for h in (a0, b0, a1, b1):
            h.close()


def test_a_blackhole_disables_only_the_worker_whose_streams_it_swallows(
    shared: Topology, workers: list[Worker], tmp_path: Path
) -> None:
    """Worker 1's call goes to host c, which the relay cannot reach (a blackhole route): its
    kernel entries count packets that never leave, so it takes its own streams back to
    userspace. Worker 0's streams stay in the kernel and the table stays."""
    topo = shared
    a0, b0 = hosts_on(topo, "ab", HOST_PORT)
    a1, c1 = hosts_on(topo, "ac", HOST_PORT + 10)
    try:
        ip("route", "add", "blackhole", f"{topo.host_address('c')}/32", ns=topo.hosts["relay"].name)
        w0 = Worker(topo, tmp_path, 0, 2, a0, b0)
        w1 = Worker(topo, tmp_path, 1, 2, a1, c1)
        workers += [w0, w1]
        assert set(table_ports(topo)) == {*w0.ports, *w1.ports}
        end = time.monotonic() + 30
        seq = 0
        while set(table_ports(topo)) != set(w0.ports):
            assert time.monotonic() < end, "worker 1 never noticed the blackhole"
            for _ in range(25):  # more than BLACKHOLE_AFTER between two sweeps
                seq += 1
                a1.send(w1.ports[0], rtp(seq, ssrc=0xA))
            time.sleep(0.3)
        assert "kernel forwarding disabled, forwarding in userspace" in w1.log()
        assert "kernel forwarding disabled" not in w0.log()
        w0.pause()
        assert relayed(a0, b0, w0.ports, 1)
    finally:
        for h in (a0, b0, a1, c1):
            h.close()


def test_a_worker_without_the_shared_table_stays_in_userspace(
    topo: Topology, workers: list[Worker], tmp_path: Path
) -> None:
    """A worker never creates the table: with none (or one made for fewer workers), it reports
    why and relays in userspace."""
    a, b = hosts_on(topo, "ab", HOST_PORT)
    try:
        w = Worker(topo, tmp_path, 0, 1, a, b)
        workers.append(w)
        assert w.offloaded == 0
        assert "no shared table ip rtpvault to attach to" in w.why_not
        assert nft(topo, "list", "table", "ip", "rtpvault").returncode != 0
        assert relayed(a, b, w.ports, 1)
        with topo.hosts["relay"].entered():
            assert create_shared_table(0, 1) is None
        try:
            w2 = Worker(topo, tmp_path, 1, 2, a, b)
            workers.append(w2)
            assert (w2.offloaded, w2.why_not.startswith("no shared table")) == (0, True)
        finally:
            with topo.hosts["relay"].entered():
                delete_shared_table(0)
    finally:
        a.close()
        b.close()
