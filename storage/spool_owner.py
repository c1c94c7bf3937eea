"""Whose spool a recording's file is in, seen from this host (docs/storage.md "Several nodes").

Nodes sharing one index usually have the same `recording-dir` path, each on its own disk, so a
path in the index names a file on the recording's node only. Each daemon writes its
`recording-node` into `recording-dir/.rtpvault-node` (`mark`); the CLI on any host then tells a
file of this host's spool from one on another node (`on_this_host`): the file's folder is
missing here, or the spool it is in is marked as another node's. A spool without the mark (one
written before it existed, or by hand) counts as the recording's own, as before.
"""

from __future__ import annotations

import os

__all__ = ["MARKER", "mark", "owner", "owner_of_spool", "on_this_host"]

MARKER = ".rtpvault-node"


def mark(recording_dir: str, node: str) -> None:
    """Name `node` as the owner of `recording_dir` (written atomically, only when it changes)."""
    path = os.path.join(recording_dir, MARKER)
    if owner_of_spool(recording_dir) == node:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(node + "\n")
    os.replace(tmp, path)


def owner_of_spool(recording_dir: str) -> str | None:
    try:
        with open(os.path.join(recording_dir, MARKER), encoding="utf-8") as f:
            return f.read().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def owner(path: str) -> str | None:
    """The node whose spool holds `path` here (recording-dir/<pcaps|metadata|sidecars>/name);
    None when the spool is not marked."""
    return owner_of_spool(os.path.dirname(os.path.dirname(path)))


def on_this_host(path: str, node: str) -> bool:
    """Whether the file `path` of a recording of `node` would be on this host."""
    if not os.path.isdir(os.path.dirname(path)):
        return False
    marked = owner(path)
    return marked is None or marked == node
