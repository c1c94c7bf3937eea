"""What the daemon expects of the parts it composes (recording, archive, HEP, metrics, ctl).

Each part lives in a module of this package with a function `attach(daemon) -> Component | None`
(None: not configured, nothing to run). `rtpvault.daemon.COMPONENTS` lists the modules in start
order; a part may look up an earlier one in `daemon.components` by its module's short name
(e.g. the archive subscribes to `daemon.components["recording"]`). A part subscribes to what
the relay publishes:

* `daemon.registry.listeners.append(fn)`: fn(event) with a `CallCreated`, `CallUpdated` or
  `CallClosed` (relay.call.events); created/updated run before the ng reply is built (the
  recorder's file name goes into it, through `daemon.commands.recording_state`), closed after
  the reply to the `delete` that ended the call (at once when a timer ends it);
* `daemon.commands.observers.append(fn)`: fn(command, request, reply, source, received) after
  every ng command, once its reply is sent (relay.ng.commands.Observer; `NgControlServer.defer`);
* `daemon.taps.subscribe(stream, name, tap)`: packets of one stream (rtpvault.taps).

`start()` runs on the loop after the ng listeners are up; `close()` runs at shutdown after every
call has been terminated (so recordings end as `complete`), in start order (producers before
the consumers they feed), and must flush what it owns. `stats()` feeds /metrics
(rtpvault.metrics): a flat dict of numbers, or of dicts of numbers for labelled families; the
names are documented where each part defines them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # types only: the daemon imports this module, and the parts import it too
    from relay.call import Registry
    from relay.config import Settings
    from relay.control import NgControlServer
    from relay.ng.commands import Commands
    from rtpvault.shard import Shard
    from rtpvault.taps import TapHub


class StartupError(Exception):
    """A part cannot start (e.g. the index schema is out of date): the daemon prints the message
    on one line and exits with `code` (1; 255 where rtpengine exits 255 for the same fault)
    before serving anything."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Component(Protocol):
    async def start(self) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class SidecarPublisher(Protocol):
    """A part that hands on each recording's sidecar document (rtpvault.recording)."""

    def subscribe(self, fn: Callable[[dict[str, Any]], None]) -> None: ...


class SettingsContext(Protocol):
    """What a part that only reads the configuration needs of the daemon. `settings` is
    replaced (not mutated) at run time by `rtpvault ctl set timeout …`, so read it each time."""

    settings: Settings


class CallContext(SettingsContext, Protocol):
    """The relay's calls and ng commands, on the daemon's event loop."""

    loop: asyncio.AbstractEventLoop
    registry: Registry
    commands: Commands


class DaemonContext(CallContext, Protocol):
    """The whole daemon as its parts see it (rtpvault.daemon.Daemon provides it)."""

    started: float
    """time.monotonic() at start-up."""
    control: NgControlServer
    taps: TapHub
    components: dict[str, Component]
    shard: Shard | None
    """This worker's link to the others (`num-threads` > 1; `shard.peers`), None in a single
    process: what answers for the whole daemon (/metrics, rtpengine-ctl) gathers through it."""
