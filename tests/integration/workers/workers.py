"""The worker processes of a running rtpvault (`num-threads`, issue 18), seen from outside.

* `worker_pids`: index → pid of the live workers, from the supervisor's "worker N started (pid
  P)" lines, kept only if P is a child of the supervisor now (/proc/PID/task/PID/children).
* `owned_call_ids`: call-ids a given worker owns (rtpvault.shard.owner_of, crc32: the same in
  every process), so a test chooses which worker a call lives in.
* `handed`: the hand-offs the receiving workers logged (rtpvault.shard, log level 7): which
  worker the kernel gave a client's request to is its choice (SO_REUSEPORT hashes the 4-tuple),
  so tests read it from there instead of guessing.
* `indexed_status`, `assert_forgotten`: after a kill, what the index says of each recording and
  that no worker knows the killed worker's calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from rtpvault.shard import owner_of
from storage.db import open_index
from storage.models import Recording
from tests.integration.recording.media import Call
from tests.support.daemons import Daemon
from tests.support.ng import NgClient
from tests.support.wait import wait_for

STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")
HANDED = re.compile(
    r"worker (\d+): (\S+) of call (\S+) from ([0-9.]+):(\d+) handed to worker (\d+)"
)


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def worker_pids(daemon: Daemon) -> dict[int, int]:
    started: dict[int, int] = {}
    for m in STARTED.finditer(daemon.log()):
        started[int(m[1])] = int(m[2])
    alive = children(daemon.proc.pid)
    return {index: pid for index, pid in started.items() if pid in alive}


def wait_workers(daemon: Daemon, count: int, not_pids: frozenset[int] = frozenset()
                 ) -> dict[int, int]:  # fmt: skip
    """The live workers once there are `count` of them and none has a pid in `not_pids`."""

    def settled() -> dict[int, int]:
        pids = worker_pids(daemon)
        return pids if len(pids) == count and not set(pids.values()) & not_pids else {}

    pids = wait_for(settled, 30)
    assert pids, f"workers: {worker_pids(daemon)}\n{daemon.log()[-3000:]}"
    return pids


def owned_call_ids(owner: int, count: int, prefix: str, workers: int = 2) -> list[str]:
    out: list[str] = []
    n = 0
    while len(out) < count:
        call_id = f"{prefix}-{n}@192.0.2.1"
        n += 1
        if owner_of(call_id, workers) == owner:
            out.append(call_id)
    return out


@dataclass(frozen=True)
class Handoff:
    receiver: int
    command: str
    call_id: str
    source: tuple[str, int]
    owner: int


def handed(daemon: Daemon) -> list[Handoff]:
    return [
        Handoff(int(m[1]), m[2], m[3], (m[4], int(m[5])), int(m[6]))
        for m in HANDED.finditer(daemon.log())
    ]


def client_on_worker(daemon: Daemon, index: int) -> NgClient:
    """An ng client whose requests the kernel gives to worker `index` (its socket keeps its
    4-tuple, so it keeps its worker): found by asking, from new sockets, about a call of each
    worker and reading which worker handed one on. Each socket is a coin toss; 64 bound a
    broken hand-off."""
    for n in range(64):
        client = daemon.client()
        port = client.sock.getsockname()[1]
        for owner in (0, 1):
            [call_id] = owned_call_ids(owner, 1, f"probe{port}.{n}")
            client.call({"command": "query", "call-id": call_id})
        receivers = {h.receiver for h in handed(daemon) if h.source == ("127.0.0.1", port)}
        assert len(receivers) == 1, receivers
        if receivers == {index}:
            return client
        client.close()
    raise AssertionError(f"no socket reached worker {index}")


def indexed_status(spool: Path) -> dict[str, str]:
    """call-id → status of each row of the spool's SQLite index."""
    index = open_index(f"sqlite:///{spool}/recordings.db", create=False)
    try:
        with index.session() as s:
            return {r.call_id: r.status for r in s.scalars(select(Recording))}
    finally:
        index.close()


def assert_forgotten(calls: list[Call]) -> None:
    """Each call is unknown to the daemon, whichever worker is asked."""
    for c in calls:
        r = c.command("query")
        assert (r["result"], r.get("error-reason")) == ("error", "Unknown call-id"), r
