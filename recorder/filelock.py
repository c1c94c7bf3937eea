"""Who may finalise a recording when several processes share one recording-dir.

Several rtpvault processes (the workers of `num-threads`, or daemons pointed at the same spool)
write into one recording-dir, and each one's start-up recovery scans all of it. Two advisory
locks (flock(2): per open file, released by the kernel when the process dies, kill -9 included)
keep recovery to the recordings of dead processes, each recovered once:

* the writer holds LOCK_EX on its media file from the moment it creates it (before the metadata
  file and the sidecar exist, so whatever recovery finds of a live recording is locked) until
  its final sidecar is on disk;
* recovery takes `sidecars/.recovery.lock` (blocking) for its whole scan, so two processes
  starting together recover in turn, the second one reading the first one's results; within it,
  a recording whose media file it cannot lock (LOCK_NB) belongs to a live process and is left.

flock(2) locks are local to a host: a recording-dir shared over NFS by several hosts is not
covered (docs/recording.md).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["hold", "claim", "release", "recovery_lock", "RECOVERY_LOCK"]

logger = logging.getLogger("rtpvault.recorder")

RECOVERY_LOCK = ".recovery.lock"
"""In sidecars/: not a `*.json`, so no sidecar scan ever reads it."""


_unsupported_logged = False


def hold(fd: int) -> bool:
    """Lock `fd`'s file; False only if another open file holds it. A file system without
    flock(2) (ENOLCK, EOPNOTSUPP: some network mounts) counts as unlocked, logged once: recovery
    then works as it did for one process, and recording is never refused for it."""
    global _unsupported_logged
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        if not _unsupported_logged:
            _unsupported_logged = True
            logger.warning("recording-dir does not support flock(2) (%s): processes sharing it "
                           "may recover each other's live recordings", exc)  # fmt: skip
    return True


def claim(paths: Iterable[str]) -> list[int] | None:
    """Lock every existing file of `paths` for recovery: their descriptors (keep them open
    while recovering, then `release`), or None when a live writer holds one of them."""
    fds: list[int] = []
    for path in dict.fromkeys(paths):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        fds.append(fd)
        if not hold(fd):
            release(fds)
            return None
    return fds


def release(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


@contextmanager
def recovery_lock(root: str) -> Iterator[None]:
    """Held for one recovery scan of `root`; waits for another process's scan to end."""
    path = os.path.join(root, "sidecars", RECOVERY_LOCK)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # e.g. a read-only spool: nothing will be written anyway
        logger.error("cannot open %s, recovering without it: %s", path, exc)
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # no flock(2) here (see `hold`): recover as one process did
            logger.error("cannot lock %s, recovering without it: %s", path, exc)
        yield
    finally:
        os.close(fd)
