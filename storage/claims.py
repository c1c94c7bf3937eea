"""Upload claims: which process holds an `uploading` job, and whether it is gone.

Several processes drain one node's queue (the workers of `num-threads`, each with its own
uploader), and a process that dies (kill -9) leaves its jobs `uploading`. A job may go back to
`pending` only when its holder is dead, or a live process would upload it a second time. A
claim token therefore names its process exactly:

    c1|<host>|<boot id>|<pid namespace>|<pid>|<start time>|<random>

On the same host, boot and PID namespace, the holder is alive while /proc/<pid>/stat shows the
same start time (a reused pid has another). A claim made on the same host before a reboot is
dead. Any other claim (another host sharing the PostgreSQL index under the same
recording-node, another container) cannot be checked from here: it is left to its holder and
only taken over once its row has not changed for CLAIM_EXPIRY (a multipart upload touches it at
every part). Tokens of earlier versions (no `c1|`) count as dead, as they always did.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

__all__ = ["Holder", "own_token", "parse", "abandoned", "CLAIM_EXPIRY"]

CLAIM_EXPIRY = 3600.0
"""Seconds without a change after which a claim this host cannot check is taken over."""

_PREFIX = "c1"


@dataclass(frozen=True, slots=True)
class Holder:
    host: str
    boot: str
    pidns: str
    pid: int
    start: str


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return "-"


def _pidns(pid: int | str) -> str:
    try:
        return str(os.stat(f"/proc/{pid}/ns/pid").st_ino)
    except OSError:
        return "-"


def start_time(pid: int | str) -> str:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot); "-" when the process is gone or
    a zombie (killed, not yet reaped by its parent: it uploads nothing any more)."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces and ")"
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return "-"
    return fields[19]


def current() -> Holder:
    """This process."""
    boot = _read("/proc/sys/kernel/random/boot_id").replace("-", "")[:12] or "-"
    return Holder(socket.gethostname()[:64].replace("|", "_"), boot, _pidns("self"), os.getpid(),
                  start_time("self"))  # fmt: skip


def own_token() -> str:
    """A new claim token of this process (one per Uploader)."""
    h = current()
    return "|".join((_PREFIX, h.host, h.boot, h.pidns, str(h.pid), h.start, uuid.uuid4().hex[:8]))


def parse(token: str | None) -> Holder | None:
    parts = (token or "").split("|")
    if len(parts) != 7 or parts[0] != _PREFIX or not parts[4].isdigit():
        return None
    return Holder(parts[1], parts[2], parts[3], int(parts[4]), parts[5])


def abandoned(token: str | None, updated: float, now: float, me: Holder | None = None) -> bool:
    """Whether the job claimed by `token` (row last changed at `updated`) may be handed back."""
    holder = parse(token)
    if holder is None:
        return True
    me = me or current()
    if holder.host != me.host or "-" in (holder.boot, me.boot):
        return now - updated > CLAIM_EXPIRY
    if holder.boot != me.boot:
        return True  # this host rebooted since: every process of that boot is gone
    if holder.pidns != me.pidns or "-" in (holder.pidns, holder.start):
        return now - updated > CLAIM_EXPIRY
    return start_time(holder.pid) != holder.start
