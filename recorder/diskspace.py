"""Free space of the spool: an early warning at 90 % full, and a reserve kept for what must
still be written when media no longer can.

When the index lives in the spool (the embedded SQLite default), a recording that filled the
disk would leave no room for what records its failure: the final sidecar, the metadata file's
move out of tmp/, the index row and its journal. So media writing stops while at least
`recording-min-free` bytes are still free. `SpaceWatch` is the bookkeeping (no I/O: the spool's
worker passes in what statvfs(2) said); `measure` is the one call to the file system.
"""

from __future__ import annotations

import logging
import os

__all__ = ["SpaceWatch", "measure", "FULL_WARNING", "MIB"]

logger = logging.getLogger("rtpvault.recorder")

FULL_WARNING = 0.90
"""Used fraction at which one warning is logged (again only after dropping below 85 %)."""
_REARM = 0.85
MIB = 1 << 20


def measure(path: str) -> tuple[int, int] | None:
    """(bytes free to an unprivileged writer, size) of the file system holding `path`."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


class SpaceWatch:
    """Free-space state of one spool: the last measurement, whether the 90 % warning is out,
    and whether media may still be written (`low`: below the reserve)."""

    def __init__(self, root: str, min_free: int) -> None:
        self.root = root
        self.min_free = max(0, min_free)
        self.free: int | None = None
        self.total: int | None = None
        self.warned = False

    @property
    def low(self) -> bool:
        return self.free is not None and self.free < self.min_free

    def low_reason(self) -> str:
        """Why media is not written while `low` (the sidecar's and the row's `reason`)."""
        return (
            f"spool nearly full: {self.free} bytes free on {self.root}, below the "
            f"recording-min-free reserve of {self.min_free // MIB} MiB kept for the index, "
            "sidecars and metadata"
        )

    def observe(self, free: int, total: int) -> None:
        """Take a measurement; logs the 90 % warning once per crossing."""
        self.free, self.total = free, total
        used = 1.0 - free / total if total > 0 else 0.0
        if used >= FULL_WARNING and not self.warned:
            self.warned = True
            logger.warning(
                "spool %s is %.0f%% full (%d bytes free); recordings stop at %d MiB free",
                self.root, used * 100, free, self.min_free // MIB,
            )  # fmt: skip
        elif used < _REARM and self.warned:
            self.warned = False
            logger.info("spool %s is %.0f%% full now (%d bytes free)", self.root, used * 100, free)
