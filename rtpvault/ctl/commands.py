"""rtpengine-ctl's command language over a running daemon (docs/spec/metrics.md §3): `run(daemon,
line)` returns the exact text rtpengine 10.5 prints for the operators' commands (list/get, set,
terminate, params, kslist), plus rtpvault's `forwarding` and `list session CALLID`.

Commands are nested tables walked one word at a time, as rtpengine's cli.c does: an empty rest
answers `More parameters required.`, `help` lists the table, an unknown word answers
`Unknown or incomplete command::<rest>`. Runs on the loop thread (listen-cli and HTTP /cli).
With `num-threads` workers, `answer` replies for the whole daemon: the commands about calls,
figures or settings are `Wide` (each worker's part, merged; `terminate CALLID` and
`list session CALLID` go to the call's owner; `set` reaches every worker).

Known differences from rtpengine 10.5: `set loglevel BOGUS N` names the unknown subsystem
(rtpengine says "Success" and does nothing); `ksadd N` answers instead of crashing (10.5
segfaults without Redis); `standby`, `active`, `debug` and `call` are not offered (no Redis
ownership, no per-call debug); `set controltos` is kept for `list`/`params` but applies to
control sockets only at the next start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
import os
import re
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from relay.ng import statistics as ngstats
from relay.ng.statistics import Figures
from rtpvault.component import DaemonContext
from rtpvault.ctl import text as ctltext
from rtpvault.ctl.params import TIMERS, apply, current, diff, set_timer
from rtpvault.ctl.state import CtlState, shared
from rtpvault.logsetup import SUBSYSTEMS, levels

__all__ = ["Wide", "answer", "catch_up", "run", "serve"]

logger = logging.getLogger("rtpvault.ctl")

MORE = "More parameters required.\n"
UNKNOWN = "Unknown or incomplete command::{}\n"

Handler = Callable[[DaemonContext, CtlState, str], str]
"""(daemon, state, rest of the line) → reply text."""


def _first(parts: Sequence[Any], rest: str) -> str:
    return str(parts[0])


def _everyone(rest: str) -> str | None:
    return None


@dataclass(frozen=True)
class Wide:
    """A command about the whole daemon (several `num-threads` workers, rtpvault.shard): every
    worker runs `part` on its own calls and settings, and `merge` makes the one reply from the
    parts in worker order, as one process with all the calls would answer. `owner(rest)` names
    a call-id when only the worker owning that call runs it (`terminate CALLID`). A part that
    is text is the reply (a usage error, or a `set` every worker applied: the same in each).
    In a single process: `merge([part])`."""

    part: Callable[[DaemonContext, CtlState, str], Any]
    merge: Callable[[Sequence[Any], str], str] = _first
    owner: Callable[[str], str | None] = _everyone

    def reply(self, parts: Sequence[Any], rest: str) -> str:
        if isinstance(parts[0], str):
            return parts[0]
        return self.merge(parts, rest)


Table: TypeAlias = "dict[str, Handler | Wide | Table]"


def run(daemon: DaemonContext, line: str) -> str:
    """The reply to one command line, from this process alone."""
    found = _resolve(TOP, line)
    if isinstance(found, str):
        return found
    entry, rest = found
    state = shared(daemon)
    if isinstance(entry, Wide):
        return entry.reply([entry.part(daemon, state, rest)], rest)
    return entry(daemon, state, rest)


async def answer(daemon: DaemonContext, line: str) -> str:
    """The reply to one command line for the whole daemon: with several workers, the parts of
    a `Wide` command are gathered from every worker (or asked of the call's owner)."""
    shard = daemon.shard
    found = _resolve(TOP, line)
    if shard is None or isinstance(found, str):
        return run(daemon, line)
    entry, rest = found
    if not isinstance(entry, Wide):
        return run(daemon, line)
    call_id = entry.owner(rest)
    if call_id is None:
        parts = await shard.peers.gather("ctl", line)
    else:
        try:
            parts = [await shard.peers.ask(shard.owner(call_id), "ctl", line)]
        except TimeoutError:  # the owner died, and its calls with it
            parts = []
    if not parts:  # answered from this worker alone (no call of its own is concerned)
        return run(daemon, line)
    return entry.reply(parts, rest)


def serve(daemon: DaemonContext) -> None:
    """Answer the other workers' `ctl` asks: this worker's part of a `Wide` command, and its
    run-time parameters (for a worker forked again, `catch_up`)."""
    if daemon.shard is not None:
        daemon.shard.peers.serve("ctl", lambda line: _part(daemon, line))
        daemon.shard.peers.serve("ctl-params", lambda _: current(daemon))


_CATCHING_UP: set[asyncio.Task[None]] = set()


def catch_up(daemon: DaemonContext) -> None:
    """Once per worker, on the loop: take another worker's run-time parameters. A worker forked
    again (after a crash) starts from the configuration, while the others carry what `set ...`
    changed since; without this, the daemon's timeouts, log levels... would depend on the
    worker. At the daemon's start all are the same and nothing changes."""
    state = shared(daemon)
    if daemon.shard is None or state.caught_up:
        return
    state.caught_up = True
    task = daemon.loop.create_task(_catch_up(daemon))
    _CATCHING_UP.add(task)
    task.add_done_callback(_CATCHING_UP.discard)


async def _catch_up(daemon: DaemonContext) -> None:
    shard, state = daemon.shard, shared(daemon)
    assert shard is not None
    other = (shard.index + 1) % shard.count
    for _ in range(3):
        changes = state.changes
        try:
            params = await shard.peers.ask(other, "ctl-params", None)
        except (TimeoutError, RuntimeError):  # that one is down too: the configuration stands
            return
        if state.changes != changes:
            continue  # a `set` reached this worker meanwhile: the answer may predate it
        if isinstance(params, dict) and params != current(daemon):
            apply(daemon, params)
            logger.info("run-time parameters taken from worker %d", other)
        return


def _part(daemon: DaemonContext, line: str) -> Any:
    found = _resolve(TOP, line)
    if isinstance(found, str) or not isinstance(found[0], Wide):
        return run(daemon, line)
    return found[0].part(daemon, shared(daemon), found[1])


def _resolve(table: Table, rest: str) -> str | tuple[Handler | Wide, str]:
    """The command's entry and the rest of its line, walking the tables one word at a time as
    rtpengine's cli.c does; or the reply when the line names no command (empty: `More
    parameters required.`, `help`: the table, an unknown word: `Unknown or incomplete ...`)."""
    rest = rest.strip()
    if not rest:
        return MORE
    word, _, tail = rest.partition(" ")
    if word == "help":
        return "Available sub-commands at this level:\n" + "".join(f"\t{k}\n" for k in table)
    entry = table.get(word)
    if entry is None:
        return UNKNOWN.format(rest)
    if isinstance(entry, dict):
        return _resolve(entry, tail)
    return entry, tail.strip()


def _strtol(text: str) -> int | None:
    """The leading integer of `text`, as C's strtol reads it (None: no digits)."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else None


# -- list / get --------------------------------------------------------------------------------
SCOPES = ("all", "own", "foreign")


def _sessions_part(daemon: DaemonContext, state: CtlState, rest: str) -> Any:
    if not rest:
        return MORE
    which = rest.split()[0]
    if which in SCOPES:
        return ctltext.session_rows(daemon, state, which)
    return ctltext.session(daemon, state, which)


def _sessions_merge(parts: Sequence[Any], rest: str) -> str:
    # each worker's rows are newest first, as one process prints all of them
    rows = heapq.merge(*parts, key=lambda row: row[0], reverse=True)
    return ctltext.sessions(list(rows), rest.split()[0])


def _one_call(rest: str) -> str | None:
    """The call-id a command line names (only its owner answers), None for a scope."""
    words = rest.split()
    return words[0] if words and words[0] not in SCOPES else None


def _counts_merge(parts: Sequence[Any], rest: str) -> str:
    return ctltext.numsessions(tuple(sum(column) for column in zip(*parts, strict=True)))


def _figures(daemon: DaemonContext, state: CtlState, rest: str) -> Figures:
    return ctltext.figures(daemon, state)


def _statistics(render: Callable[[dict[str, Any]], str]) -> Wide:
    """`list totals|counters|jsonstats`: rendered from every worker's figures, merged."""
    return Wide(_figures, lambda parts, rest: render(ngstats.build(ngstats.merge(parts))))


def _every(handler: Handler) -> Wide:
    """A command every worker runs (a setting, `terminate all`): the same reply from each."""

    def part(daemon: DaemonContext, state: CtlState, rest: str) -> str:
        state.changes += 1  # a catch-up answer older than this change must not undo it
        return handler(daemon, state, rest)

    return Wide(part)


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
    pid = os.getpid() if daemon.shard is None else os.getppid()  # the daemon's: its supervisor
    return (f"Maximum open-files configured on rtpengine: {soft}; "
            f"cat /proc/{pid}/limits\n")  # fmt: skip


LIST: Table = {
    "numsessions": Wide(lambda d, st, r: ctltext.session_counts(d), _counts_merge),
    "sessions": Wide(_sessions_part, _sessions_merge, _one_call),
    "session": Wide(_sessions_part, _sessions_merge, _one_call),  # reads better with a call-id
    "totals": _statistics(ctltext.totals),
    "counters": _statistics(ctltext.counters),
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
    "interfaces": Wide(_figures, lambda parts, r: ctltext.interfaces(ngstats.merge(parts))),
    "jsonstats": _statistics(ctltext.jsonstats),
    "transcoders": Wide(_figures, lambda parts, r: ctltext.transcoders(ngstats.merge(parts))),
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


SET: Table = {  # every worker applies them (max-sessions: see rtpvault.limits)
    "maxsessions": _every(_set_maxsessions),
    **{name: _every(_set_timer(name)) for name in TIMERS},
    "loglevel": _every(_set_loglevel),
    "controltos": _every(_set_controltos),
    "deletedelay": _every(_set_deletedelay),
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


PARAMS: Table = {
    "start": lambda d, st, r: _params_list(d, st, r, "start"),
    "current": lambda d, st, r: _params_list(d, st, r, "current"),
    "diff": lambda d, st, r: diff(st.started_with, current(d)),
    "revert": _every(lambda d, st, r: _revert(d, st)),
}


def _redis(verb: str) -> Handler:
    def handler(daemon: DaemonContext, state: CtlState, rest: str) -> str:
        if not rest:
            return MORE
        # rtpengine 10.5 segfaults on `ksadd 1` without Redis (docs/spec/metrics.md §3.3): answer.
        return f"Fail {verb} keyspace {rest}; Redis is not configured (rtpvault has none)\n"

    return handler


TOP: Table = {
    "list": LIST,
    "terminate": Wide(_terminate, owner=_one_call),  # all|own|foreign: every worker's calls
    "set": SET,
    "get": LIST,
    "params": PARAMS,
    "ksadd": _redis("adding"),
    "ksrm": _redis("removing"),
    "kslist": lambda d, st, r: "\nSubscribed-on keyspaces:\n\n",
    "forwarding": Wide(lambda d, st, r: ctltext.forwarding_rows(d),
                       lambda parts, r: ctltext.forwarding(
                           list(heapq.merge(*parts, key=lambda row: row[0])))),
}
