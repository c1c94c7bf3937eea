"""`rtpvault run` exit status and start-up messages as docs/operations.md ("Exit status") lists
them: 0 after SIGTERM, 1 for a bad configuration, 255 when a listener cannot bind (a second
daemon on a busy port), the message naming the listener, address and port."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import daemons
from tests.support.tools import free_port, free_port_range

pytestmark = pytest.mark.integration


def run(*extra: str, ng: int | None = None) -> subprocess.CompletedProcess[str]:
    pmin, pmax = free_port_range(20)
    command = [
        *daemons.rtpvault_command(), "run", "--config-file=none", "--foreground", "--table=-1",
        "--interface=lo/127.0.0.1", f"--port-min={pmin}", f"--port-max={pmax}",
        f"--listen-ng=127.0.0.1:{ng or free_port()}", *extra,
    ]  # fmt: skip
    # the timeout is a hang guard: each of these exits at start-up
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@contextmanager
def held(kind: int) -> Iterator[int]:
    """A port another process (this test) already holds."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("kind", "option", "what"),
    [
        (socket.SOCK_DGRAM, None, "ng (UDP)"),
        (socket.SOCK_STREAM, "--listen-tcp-ng", "ng (TCP)"),
        (socket.SOCK_STREAM, "--listen-http", "HTTP"),
        (socket.SOCK_STREAM, "--listen-cli", "CLI"),
    ],
)
def test_a_busy_port_exits_255_naming_address_and_port(kind: int, option: str | None,
                                                       what: str) -> None:  # fmt: skip
    with held(kind) as port:
        if option is None:
            out = run(ng=port)
        else:
            out = run(f"{option}=127.0.0.1:{port}")
    assert out.returncode == 255, out.stderr
    expected = f"Fatal error: {what} on 127.0.0.1:{port}: address already in use"
    assert f"rtpvault: {expected}\n" in out.stderr
    assert "('127.0.0.1'" not in out.stderr and "Errno" not in out.stderr
    assert "Traceback" not in out.stderr


def test_a_bad_value_exits_1() -> None:
    out = run("--port-min=abc")
    assert out.returncode == 1
    assert "port-min" in out.stderr and "abc" in out.stderr and "Traceback" not in out.stderr


def test_sigterm_exits_0(tmp_path: Path) -> None:
    d = daemons.start("rtpvault", tmp_path)
    assert d.stop() == 0
