"""rtpengine-ctl's run-time parameters: `params start|current|diff|revert` and the setters of
`set ...` (timeouts, delete-delay, max-sessions, control-tos, log levels).

Timeouts live in `daemon.settings` (a frozen Settings); a change replaces it with
`dataclasses.replace`, and the daemon's timer loop re-reads `daemon.settings` every second, so a
new timeout applies to running calls within a second. delete-delay and max-sessions live in the
registry and the ng command table, log levels in rtpvault.logsetup.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from relay.config import Listen
from rtpvault.component import CallContext
from rtpvault.logsetup import SUBSYSTEMS, levels

__all__ = ["TIMERS", "apply", "current", "diff", "set_timer"]

logger = logging.getLogger("rtpvault.ctl")

# CLI name → (param name, Settings attribute, rtpengine's `list` form)
TIMERS = {
    "timeout": ("timeout", "timeout", "TIMEOUT={}"),
    "silenttimeout": ("silent-timeout", "silent_timeout", "SILENT_TIMEOUT={}"),
    "offertimeout": ("offer-timeout", "offer_timeout", "OFFER_TIMEOUT={}"),
    "finaltimeout": ("final-timeout", "final_timeout", "FINAL_TIMEOUT={}"),
}


def _listen(spec: Listen | None) -> str:
    if spec is None:
        return ""
    return f"{spec[0]}:{spec[1]}" if spec[0] else str(spec[1])


def current(daemon: CallContext) -> dict[str, Any]:
    """The parameters in rtpengine 10.5's `params current` order (the ones rtpvault has)."""
    s = daemon.settings
    out: dict[str, Any] = {f"log-level-{n}": v for n, v in levels().levels.items()}
    out.update({
        "table": s.table,
        "max-sessions": daemon.commands.max_sessions,
        "timeout": s.timeout,
        "silent-timeout": s.silent_timeout,
        "final-timeout": s.final_timeout,
        "offer-timeout": s.offer_timeout,
        "delete-delay": daemon.registry.delete_delay,
        "tos": s.tos,
        "control-tos": s.control_tos,
        "port-min": s.port_min,
        "port-max": s.port_max,
        "num-threads": s.num_threads,
        "max-cpu": f"{s.max_cpu:.1f}",
        "max-load": f"{s.max_load:.2f}",
        "max-bw": s.max_bandwidth,
    })  # fmt: skip
    for i, itf in enumerate(s.interfaces):
        out[f"interface[{i}]"] = f"{itf.name}\\{itf.local} "
    out["recording-dir"] = s.recording_dir or "(null)"
    out["recording-method"] = s.recording_method
    out["recording-format"] = s.recording_format
    out["listen-ng"] = _listen(s.listen_ng)
    out["listen-tcp-ng"] = _listen(s.listen_tcp_ng)
    out["listen-cli"] = _listen(s.listen_cli)
    return out


def diff(start: dict[str, Any], now: dict[str, Any]) -> str:
    return "".join(f"{k}: {start[k]} => {v}\n" for k, v in now.items()
                   if k in start and start[k] != v)  # fmt: skip


def set_timer(daemon: CallContext, name: str, value: int) -> None:
    _, attr, _ = TIMERS[name]
    old = getattr(daemon.settings, attr)
    change: dict[str, Any] = {attr: value}
    daemon.settings = dataclasses.replace(daemon.settings, **change)
    logger.info("%s changed from %s to %s by operator", name, old, value)


def apply(daemon: CallContext, params: dict[str, Any]) -> None:
    """Set every run-time parameter back to `params` (`params revert`)."""
    for name, (param, attr, _) in TIMERS.items():
        if getattr(daemon.settings, attr) != params[param]:
            set_timer(daemon, name, int(params[param]))
    daemon.settings = dataclasses.replace(daemon.settings, control_tos=params["control-tos"])
    daemon.registry.delete_delay = params["delete-delay"]
    daemon.commands.limits.set_max_sessions(params["max-sessions"])
    lv = levels()
    for name in SUBSYSTEMS:
        lv.levels[name] = params[f"log-level-{name}"]
    lv.apply()
