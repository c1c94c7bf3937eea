"""Start the real rtpengine 10.5 and rtpvault side by side for tests and benchmarks.

Both get the same command line (rtpengine's long options); readiness is an ng ping.

`num-threads` (issue 18): without `num_threads=` or `RTPVAULT_NUM_THREADS` in the environment,
neither daemon is given it, so both use their default (the number of CPUs: 2 workers on the CI
machine). `RTPVAULT_NUM_THREADS=1` runs every test with one worker; a test that must cover both
passes `num_threads=1` for its one-worker case (see tests/integration/differential and
tests/integration/kamailio).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .ng import NgClient
from .tools import free_port, free_port_range, require

if TYPE_CHECKING:  # benches import this module without pytest
    import pytest

REPO = Path(__file__).resolve().parents[2]
NUM_THREADS_ENV = "RTPVAULT_NUM_THREADS"


def num_threads_args(num_threads: int | None = None) -> list[str]:
    """`--num-threads=N` for both daemons: `num_threads`, else $RTPVAULT_NUM_THREADS, else none
    (each daemon's default, the number of CPUs)."""
    value = num_threads if num_threads is not None else os.environ.get(NUM_THREADS_ENV, "")
    return [f"--num-threads={int(value)}"] if str(value).strip() else []


def rtpvault_command() -> list[str]:
    exe = Path(sys.executable).with_name("rtpvault")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "rtpvault"]


@dataclass
class Daemon:
    """A running relay: its process, ng address and media port range."""

    name: str
    proc: subprocess.Popen[bytes]
    ng_port: int
    port_min: int
    port_max: int
    log_path: Path
    tcp_ng_port: int | None = None
    args: list[str] = field(default_factory=list)

    def client(self, timeout: float = 5.0) -> NgClient:
        return NgClient("127.0.0.1", self.ng_port, timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)


def _started(d: Daemon) -> bool:
    """rtpvault with several workers: the first one serving answers the ping; every worker
    serves once the supervisor logs "Startup complete" (a test that kills a worker, or whose
    request is handed to a worker still starting, needs them all). Without INFO lines (a
    lower --log-level), the ping is all there is."""
    levels = [a.split("=", 1)[1] for a in d.args if a.startswith("--log-level=")]
    if d.name != "rtpvault" or (levels and int(levels[-1]) < 6):
        return True
    return "Startup complete" in d.log()


def _wait_ready(d: Daemon, deadline: float) -> None:
    while time.monotonic() < deadline:
        if d.proc.poll() is not None:
            raise RuntimeError(f"{d.name} exited with {d.proc.returncode}:\n{d.log()}")
        if not _started(d):  # no ping before: each would count in `statistics` (pingcount)
            time.sleep(0.02)
            continue
        c = d.client(timeout=0.2)
        try:
            if c.call({"command": "ping"}).get("result") == "pong":
                return
        except (TimeoutError, ConnectionRefusedError):
            pass
        finally:
            c.close()
    d.stop()
    raise RuntimeError(f"{d.name} did not answer ping:\n{d.log()}")


def start(
    kind: str,
    workdir: Path,
    *,
    interface: str = "lo/127.0.0.1!203.0.113.1",
    ports: int = 500,
    extra: list[str] | None = None,
    tcp: bool = False,
    config_file: str = "none",
    num_threads: int | None = None,
    ng_port: int | None = None,
    port_range: tuple[int, int] | None = None,
) -> Daemon:
    """Start `kind` ("rtpengine" or "rtpvault") on loopback with a private port range
    (`num_threads`: see the module's docstring). `ng_port` and `port_range` restart a node on
    the ng port and media ports it had (default: free ones)."""
    ng_port = ng_port or free_port()
    tcp_port = free_port(socket.SOCK_STREAM) if tcp else None
    pmin, pmax = port_range or free_port_range(ports)
    args = [
        f"--config-file={config_file}",
        "--foreground",
        "--log-stderr",
        "--table=-1",
        f"--interface={interface}",
        f"--listen-ng=127.0.0.1:{ng_port}",
        f"--port-min={pmin}",
        f"--port-max={pmax}",
        "--log-level=7",
    ]
    if tcp_port:
        args.append(f"--listen-tcp-ng=127.0.0.1:{tcp_port}")
    extra = extra or []
    if not any(a.startswith("--num-threads") for a in extra):
        args += num_threads_args(num_threads)
    args += extra
    if kind == "rtpengine":
        cmd = [require("rtpengine"), *args, "--no-log-timestamps"]
    elif kind == "rtpvault":
        cmd = [*rtpvault_command(), "run", *args]
    else:
        raise ValueError(kind)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{kind}-{ng_port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir, env=env
    )
    d = Daemon(kind, proc, ng_port, pmin, pmax, log_path, tcp_port, args)
    _wait_ready(d, time.monotonic() + 20)
    return d


def per_module(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               prefix: str, **start_args: Any) -> Iterator[Daemon]:  # fmt: skip
    """The body of a module fixture parametrised over ["rtpengine", "rtpvault"] (`yield from`
    it): that daemon, in a directory `prefix-KIND` of its own, stopped after the module."""
    kind = str(request.param)
    d = start(kind, Path(tmp_path_factory.mktemp(f"{prefix}-{kind}")), **start_args)
    try:
        yield d
    finally:
        d.stop()
