"""stdlib logging for the daemon: rtpengine's levels (0-7, syslog numbering), stderr or syslog."""

from __future__ import annotations

import logging
import logging.handlers
import sys

# rtpengine log-level (syslog priority) → Python level.
_LEVELS = {0: 50, 1: 50, 2: 50, 3: 40, 4: 30, 5: 25, 6: 20, 7: 10}
logging.addLevelName(25, "NOTICE")


class _CallIdFilter(logging.Filter):
    """Prefix messages with [call-id] when a record carries one (extra={"call_id": ...})."""

    def filter(self, record: logging.LogRecord) -> bool:
        call_id = getattr(record, "call_id", None)
        record.callctx = f"[{call_id}] " if call_id else ""
        return True


def setup_logging(level: int = 6, to_stderr: bool = True, facility: str = "daemon") -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if to_stderr:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s: [%(name)s] %(callctx)s%(message)s"
    else:
        fac = logging.handlers.SysLogHandler.facility_names.get(facility, 3)
        handler = logging.handlers.SysLogHandler(address="/dev/log", facility=fac)
        fmt = "rtpvault[%(process)d]: %(levelname)s: [%(name)s] %(callctx)s%(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(_CallIdFilter())
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(max(0, min(7, level)), 20))
