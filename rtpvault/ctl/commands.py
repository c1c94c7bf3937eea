"""rtpengine-ctl's command language over a running daemon (docs/spec/metrics.md §3): `run(daemon,
line)` returns the exact text rtpengine 10.5 prints for the operators' commands (list/get, set,
terminate, params, kslist), plus rtpvault's `forwarding` and `list session CALLID`.

Commands are nested tables walked one word at a time, as rtpengine's cli.c does: an empty rest
answers `More parameters required.`, `help` lists the table, an unknown word answers
`Unknown or incomplete command::<rest>`. Runs on the loop thread (listen-cli and HTTP /cli).

Known differences from rtpengine 10.5: `set loglevel BOGUS N` names the unknown subsystem
(rtpengine says "Success" and does nothing); `ksadd N` answers instead of crashing (10.5
segfaults without Redis); `standby`, `active`, `debug` and `call` are not offered (no Redis
ownership, no per-call debug); `set controltos` is kept for `list`/`params` but applies to
control sockets only at the next start.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import resource
from collections.abc import Callable

from rtpvault.component import DaemonContext
from rtpvault.ctl import text as ctltext
from rtpvault.ctl.params import TIMERS, apply, current, diff, set_timer
from rtpvault.ctl.state import CtlState, shared
from rtpvault.logsetup import SUBSYSTEMS, levels

__all__ = ["run"]

logger = logging.getLogger("rtpvault.ctl")

MORE = "More parameters required.\n"
UNKNOWN = "Unknown or incomplete command::{}\n"

Handler = Callable[[DaemonContext, CtlState, str], str]
"""(daemon, state, rest of the line) → reply text."""


def run(daemon: DaemonContext, line: str) -> str:
    """The reply to one command line."""
    return _walk(TOP, daemon, shared(daemon), line)


def _walk(table: dict[str, Handler], daemon: DaemonContext, state: CtlState, rest: str) -> str:
    rest = rest.strip()
    if not rest:
        return MORE
    word, _, tail = rest.partition(" ")
    if word == "help":
        return "Available sub-commands at this level:\n" + "".join(f"\t{k}\n" for k in table)
    handler = table.get(word)
    if handler is None:
        return UNKNOWN.format(rest)
    return handler(daemon, state, tail.strip())


def _sub(table: dict[str, Handler]) -> Handler:
    return lambda daemon, state, rest: _walk(table, daemon, state, rest)


def _strtol(text: str) -> int | None:
    """The leading integer of `text`, as C's strtol reads it (None: no digits)."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else None


# -- list / get --------------------------------------------------------------------------------
def _sessions(daemon: DaemonContext, state: CtlState, rest: str) -> str:
    if not rest:
        return MORE
    which = rest.split()[0]
    if which in ("all", "own", "foreign"):
        return ctltext.sessions(daemon, state, which)
    return ctltext.session(daemon, state, which)


def _loglevel(daemon: DaemonContext, state: CtlState, rest: str) -> str:
    lv = levels().levels
    if not rest:
        return "".join(f"{name} = {level}\n" for name, level in lv.items())
    return f"{lv[rest]}\n" if rest in lv else ""


def _const(text: Callable[[DaemonContext], str]) -> Handler:
    return lambda daemon, state, rest: text(daemon)


def _timer_value(name: str) -> Handler:
    form = TIMERS[name][2]
    return _const(lambda d: form.format(getattr(d.settings, TIMERS[name][1])) + "\n")


def _maxopenfiles(daemon: DaemonContext) -> str:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (f"Maximum open-files configured on rtpengine: {soft}; "
            f"cat /proc/{os.getpid()}/limits\n")  # fmt: skip


LIST: dict[str, Handler] = {
    "numsessions": _const(ctltext.numsessions),
    "sessions": _sessions,
    "session": _sessions,  # rtpvault: `list session CALLID` reads better; same reply
    "totals": lambda d, st, r: ctltext.totals(d, st),
    "counters": lambda d, st, r: ctltext.counters(d, st),
    "maxopenfiles": _const(_maxopenfiles),
    "maxsessions": _const(
        lambda d: f"Maximum sessions configured on rtpengine: {d.commands.max_sessions}\n"
    ),  # fmt: skip
    "maxcpu": _const(
        lambda d: f"Maximum CPU usage configured on rtpengine: {d.settings.max_cpu:.1f}\n"
    ),  # fmt: skip
    "maxload": _const(
        lambda d: f"Maximum load average configured on rtpengine: {d.settings.max_load:.2f}\n"
    ),  # fmt: skip
    "maxbw": _const(
        lambda d: f"Maximum bandwidth configured on rtpengine: {d.settings.max_bandwidth}\n"
    ),  # fmt: skip
    **{name: _timer_value(name) for name in TIMERS},
    "loglevels": _const(
        lambda d: "".join(f"{n} - {desc}\n" for n, (desc, _) in SUBSYSTEMS.items())
    ),  # fmt: skip
    "loglevel": _loglevel,
    "controltos": _const(lambda d: f"{d.settings.control_tos}\n"),
    "deletedelay": _const(lambda d: f"{d.registry.delete_delay}\n"),
    "interfaces": _const(ctltext.interfaces),
    "jsonstats": lambda d, st, r: ctltext.jsonstats(d, st),
    "transcoders": _const(lambda d: "No stats entries\n"),  # rtpvault does not transcode
}


# -- set ---------------------------------------------------------------------------------------
def _set_timer(name: str) -> Handler:
    # rtpengine 10.5 says "timeout" in the replies of all four timers (measured).
    def handler(daemon: DaemonContext, state: CtlState, rest: str) -> str:
        if not rest:
            return MORE
        value = _strtol(rest)
        if value is None:
            return f"Fail setting timeout to {rest}; no digists found\n"  # sic, as rtpengine
        if value < 0:
            return f"Fail setting timeout to {rest}; errno=0\n"
        set_timer(daemon, name, value)
        return f"Success setting timeout to {value}\n"

    return handler


def _set_maxsessions(daemon: DaemonContext, state: CtlState, rest: str) -> str:
    if not rest:
        return MORE
    value = _strtol(rest)
    if value is None:
        return f"Fail setting maxsessions to {rest}; no digists found\n"
    if value < -1:
        return f"Fail setting maxsessions to {value}; either positive or -1 values allowed\n"
    daemon.commands.limits.set_max_sessions(value)  # every worker's
    if value == -1:
        return "Success setting maxsessions to -1; disable feature\n"
    return f"Success setting maxsessions to {value}\n"


def _set_deletedelay(daemon: DaemonContext, state: CtlState, rest: str) -> str:
    if not rest:
        return MORE
    value = _strtol(rest)
    if value is None:
        return "Invalid delete-delay value\n"
    daemon.registry.delete_delay = value
    return f"Success setting delete-delay to {value}\n"


def _set_controltos(daemon: DaemonContext, state: CtlState, rest: str) -> str:
    if not rest:
        return MORE
    value = _strtol(rest)
    if value is None or not 0 <= value <= 255:
        return f"Invalid control-tos value {rest}, must be between 0 and 255\n"
    daemon.settings = dataclasses.replace(daemon.settings, control_tos=value)
    return f"Success setting control-tos to {value}\n"


def _set_loglevel(daemon: DaemonContext, state: CtlState, rest: str) -> str:
    words = rest.split()
    if not words:
        return MORE
    subsystem: str | None = None
    if not words[0].isdigit():
        subsystem, words = words[0], words[1:]
        if not words or not words[0].isdigit():
            return MORE
        if subsystem not in SUBSYSTEMS:
            return f"Unknown log subsystem '{subsystem}'; see `list loglevels`\n"
    level = int(words[0])
    levels().set(level, subsystem)
    logger.info("log level of %s set to %d by operator", subsystem or "all subsystems", level)
    return f"Success setting loglevel to {level}\n"


SET: dict[str, Handler] = {
    "maxsessions": _set_maxsessions,
    **{name: _set_timer(name) for name in TIMERS},
    "loglevel": _set_loglevel,
    "controltos": _set_controltos,
    "deletedelay": _set_deletedelay,
}


# -- terminate, params, Redis keyspaces, forwarding -----------------------------------------
def _terminate(daemon: DaemonContext, state: CtlState, rest: str) -> str:
    if not rest:
        return MORE
    target = rest.split()[0]
    reg = daemon.registry
    scopes = {"all": "All", "own": "All own", "foreign": "All foreign"}
    if target in scopes:
        label = scopes[target]
        for call in list(reg.calls.values()):
            if target == "all" or call.foreign == (target == "foreign"):
                reg.terminate(call.call_id, "forced")
        logger.warning("%s calls terminated by operator.", label)
        return f"{label} calls terminated by operator.\n"
    if reg.terminate(target, "forced"):
        logger.warning("Call terminated by operator", extra={"call_id": target})
        return f"\nCall Id ({target}) successfully terminated by operator.\n\n"
    return f"\nCall Id not found ({target}).\n\n"


def _params_list(daemon: DaemonContext, state: CtlState, rest: str, which: str) -> str:
    values = state.started_with if which == "start" else current(daemon)
    return "".join(f"{k} = {v}\n" for k, v in values.items())


def _revert(daemon: DaemonContext, state: CtlState) -> str:
    apply(daemon, state.started_with)
    return ""  # rtpengine prints nothing


PARAMS: dict[str, Handler] = {
    "start": lambda d, st, r: _params_list(d, st, r, "start"),
    "current": lambda d, st, r: _params_list(d, st, r, "current"),
    "diff": lambda d, st, r: diff(st.started_with, current(d)),
    "revert": lambda d, st, r: _revert(d, st),
}


def _redis(verb: str) -> Handler:
    def handler(daemon: DaemonContext, state: CtlState, rest: str) -> str:
        if not rest:
            return MORE
        # rtpengine 10.5 segfaults on `ksadd 1` without Redis (docs/spec/metrics.md §3.3): answer.
        return f"Fail {verb} keyspace {rest}; Redis is not configured (rtpvault has none)\n"

    return handler


TOP: dict[str, Handler] = {
    "list": _sub(LIST),
    "terminate": _terminate,
    "set": _sub(SET),
    "get": _sub(LIST),
    "params": _sub(PARAMS),
    "ksadd": _redis("adding"),
    "ksrm": _redis("removing"),
    "kslist": lambda d, st, r: "\nSubscribed-on keyspaces:\n\n",
    "forwarding": lambda d, st, r: ctltext.forwarding(d),
}
