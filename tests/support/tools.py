"""Finding the real programs the tests drive.

With CI=true a missing one fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str) -> None:
    """A component the test needs is missing: skip locally, fail when CI=true."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require(binary: str) -> str:
    """Path of `binary`; skip the test when absent, but fail when CI=true."""
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if os.path.exists(p)), None
    )
    if path is None:
        unavailable(f"{binary} is not installed (run .ci/bootstrap)")
    assert path is not None
    return path


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    """A port that is free for `kind` on `host` right now (and for TCP too)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port


def udp_port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether this process could bind UDP `port` on `host` now (nobody else holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 60000


def free_port_range(
    size: int, host: str = "127.0.0.1", below_ephemeral: bool = False
) -> tuple[int, int]:
    """An even-aligned range of `size` UDP ports on `host` that are all free right now.

    `below_ephemeral`: below the kernel's ephemeral range when there is room, for a program
    that cannot move on when its port is taken between our check and its bind (sipp's media
    ports: an ephemeral bind by another process took one once in the full suite). Daemons
    scan their range and skip a taken port, so they keep the whole 20000-60000 space."""
    import random

    top = min(60000, _ephemeral_low()) if below_ephemeral else 60000
    if top - size <= 20000:
        top = 60000
    for _ in range(200):
        start = random.randrange(20000, top - size) & ~1
        socks = []
        try:
            for port in range(start, start + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((host, port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return start, start + size - 1
    raise RuntimeError("no free UDP port range")
