"""Daemons with `redis` for tests/integration/redis: a DB of the machine's Redis per test, a
redis-server of a test's own, and a daemon started again on the same ports after `kill -9`."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.daemons import Daemon, _wait_ready, rtpvault_command
from tests.support.tools import free_port, free_port_range, require, udp_port_free
from tests.support.wait import wait_for

DBS = range(8, 16)
"""DB numbers of the machine's Redis these tests use (one per test, locked while in use)."""
LOCKS = Path("/tmp/rtpvault-test-redis-db")


@contextmanager
def machine_db() -> Iterator[tuple[int, redis.Redis]]:
    """A DB of the machine's Redis at 127.0.0.1:6379 no other test of ours holds, empty
    (FLUSHDB of that DB only) before and after."""
    LOCKS.mkdir(exist_ok=True)
    for db in DBS:
        f = open(LOCKS / f"{db}.lock", "w")  # noqa: SIM115 - held for the test
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        client.flushdb()
        try:
            yield db, client
        finally:
            client.flushdb()
            client.close()
            f.close()
        return
    raise RuntimeError("every test DB of the machine's Redis is in use")


@dataclass
class OwnRedis:
    """A redis-server of the test's own (no persistence), stopped with SIGKILL."""

    port: int
    workdir: Path
    password: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server") or require("redis-server")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir),
             *(["--requirepass", self.password] if self.password else [])],  # fmt: skip
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        client = self.client()
        assert wait_for(lambda: client.ping(), 10, retry_on=(redis.ConnectionError,))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=0, socket_connect_timeout=1,
                           password=self.password)  # fmt: skip


@dataclass
class Relaunch:
    """rtpvault with fixed ng port and port range, so it can be started again the same way."""

    workdir: Path
    extra: list[str]
    num_threads: int = 1
    ports: int = 100
    ng_port: int = field(default_factory=free_port)
    port_range: tuple[int, int] = (0, 0)
    runs: int = 0
    started: list[Daemon] = field(default_factory=list)

    def __post_init__(self) -> None:
        # below the ephemeral range: a port another program binds by chance between the kill
        # and the restart would make the restore skip that call
        self.port_range = free_port_range(self.ports, below_ephemeral=True)

    def args(self) -> list[str]:
        pmin, pmax = self.port_range
        return ["--config-file=none", "--foreground", "--log-stderr", "--table=-1",
                "--interface=lo/127.0.0.1", f"--listen-ng=127.0.0.1:{self.ng_port}",
                f"--port-min={pmin}", f"--port-max={pmax}", "--log-level=7",
                f"--num-threads={self.num_threads}", "--delete-delay=0",
                *self.extra]  # fmt: skip

    def popen(self) -> tuple[subprocess.Popen[bytes], Path]:
        self.runs += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / f"rtpvault-run{self.runs}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen([*rtpvault_command(), "run", *self.args()], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.workdir,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))  # fmt: skip
        return proc, log_path

    def start(self) -> Daemon:
        proc, log_path = self.popen()
        pmin, pmax = self.port_range
        d = Daemon("rtpvault", proc, self.ng_port, pmin, pmax, log_path, None, self.args())
        self.started.append(d)
        _wait_ready(d, time.monotonic() + 30)
        return d

    def stop_all(self) -> None:
        """Stop every daemon this rig started (a killed one's stop only reaps it)."""
        for d in self.started:
            d.stop()


def kill9(d: Daemon) -> None:
    """`kill -9` of the daemon (its workers die with it), then wait until its ng port is free."""
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    assert wait_for(lambda: udp_port_free(d.ng_port), 20)
