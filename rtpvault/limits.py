"""Process limits raised at start-up.

Every call holds four UDP sockets and a recorded one two files more, so the usual soft limit of
1024 open files (256 on some systems) is reached long before the port range; past it, sockets
and recordings fail with EMFILE. rtpvault raises the soft limit to the hard one, as the systemd
unit's `LimitNOFILE=` would, and logs both.
"""

from __future__ import annotations

import logging
import resource

__all__ = ["raise_open_files_limit"]

logger = logging.getLogger("rtpvault.daemon")

_NR_OPEN = "/proc/sys/fs/nr_open"  # the kernel's ceiling when the hard limit is "unlimited"


def _ceiling(hard: int) -> int:
    if hard != resource.RLIM_INFINITY:
        return hard
    try:
        with open(_NR_OPEN) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1 << 20


def raise_open_files_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit; returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _ceiling(hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        logger.info("open files limit: soft %d, hard %d", soft, hard)
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        logger.warning("open files limit: soft %d, hard %d; cannot raise the soft limit: %s",
                       soft, hard, exc)  # fmt: skip
        return soft, hard
    logger.info("open files limit: soft %d raised to %d (hard limit %d)", soft, target, hard)
    return target, hard
