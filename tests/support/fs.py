"""Real small and full file systems for tests: a tmpfs of a given size, and a file that fills
it up to a given number of free bytes (needs root, as the test machines run)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .tools import require, unavailable


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of `size` (mount(8) syntax: "4m") on `path`; unmounted on exit."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([require("mount"), "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                           str(path)], capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs (root needed): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run([require("umount"), "-l", str(path)], check=False)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path, leave: int) -> Path:
    """Write a filler file under `path` until its file system is full, then give back `leave`
    bytes (rounded down to whole pages). Returns the filler; delete it to free the space."""
    filler = path / "filler"
    block = b"\0" * (1 << 16)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                if os.write(fd, block) == 0:
                    break
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        size = os.fstat(fd).st_size
        os.ftruncate(fd, max(0, size - leave))
    finally:
        os.close(fd)
    return filler
