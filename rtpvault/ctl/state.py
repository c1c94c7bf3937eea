"""What rtpengine-ctl's commands need beyond the daemon's own objects, kept once per daemon and
shared by `listen-cli` (rtpvault.ctl) and HTTP `/cli/...` (rtpvault.http):

* the ng client each call came from (rtpengine's `proxy` column), from the ng observers;
* per-second packet/byte/error rates (`list counters`, `list totals`), sampled once a second on
  the loop from the registry's counters — one pass over the streams per second, nothing per
  packet;
* the parameters at start-up, for `params start|diff|revert`.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from relay.call import CallClosed, CallEvent
from rtpvault.component import CallContext
from rtpvault.ctl.params import current

__all__ = ["CtlState", "shared"]


class CtlState:
    def __init__(self, daemon: CallContext) -> None:
        self.daemon = daemon
        self.proxy: dict[str, str] = {}
        self.rates: dict[str, int] = {"packets": 0, "bytes": 0, "errors": 0}
        self._last: tuple[float, tuple[int, int, int]] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._users = 0
        self.started_with: dict[str, Any] = current(daemon)
        self.caught_up = False
        self.changes = 0
        """Run-time parameter changes made here (`set ...`, `params revert`)."""
        """A worker took the others' run-time parameters (rtpvault.ctl.commands.catch_up)."""
        daemon.commands.observers.append(self._on_ng)
        daemon.registry.listeners.append(self._on_call)

    # -- lifetime: started and closed by each user (listen-cli, listen-http) ---------------------
    def start(self) -> None:
        self._users += 1
        if self._users == 1:
            self._tick()

    def close(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users == 0 and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        loop = self.daemon.loop
        now = loop.time()
        relayed = self.daemon.registry.relayed()
        if self._last is not None:
            then, before = self._last
            span = max(now - then, 1e-3)
            for key, new, old in zip(("packets", "bytes", "errors"), relayed, before, strict=True):
                self.rates[key] = int(max(0, new - old) / span)
        self._last = (now, relayed)
        self._handle = loop.call_later(1.0, self._tick)

    # -- events -----------------------------------------------------------------------------
    def _on_ng(self, command: str, request: dict[str, Any], reply: dict[str, Any],
               source: tuple[str, int], received: float) -> None:  # fmt: skip
        call_id = request.get("call-id")
        if isinstance(call_id, str) and call_id not in self.proxy \
                and call_id in self.daemon.registry.calls:  # fmt: skip
            self.proxy[call_id] = f"{source[0]}:{source[1]}"

    def _on_call(self, event: CallEvent) -> None:
        if isinstance(event, CallClosed):
            self.proxy.pop(event.call.call_id, None)


_STATES: weakref.WeakKeyDictionary[Any, CtlState] = weakref.WeakKeyDictionary()


def shared(daemon: CallContext) -> CtlState:
    """The daemon's CtlState, made on first use (the daemon owns nothing of ours)."""
    state = _STATES.get(daemon)
    if state is None:
        state = _STATES[daemon] = CtlState(daemon)
    return state
