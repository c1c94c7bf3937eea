"""The journal of each call's state (docs/design/redis-state.md): every successful
state-changing ng request of a call with its time, source, bencoded body and the ports it took,
plus the media state signalling does not make (learned peers, DTLS-derived SRTP keys), kept as
a document (relay.state.document) handed to a sink whenever it changes.

Hooks: a Commands observer (run after each reply), a Registry listener (a closed call: the
sink gets None), and a Registry ticker that looks, about once a second, for media state that
changed (one pass over the streams; nothing on the packet path). `media_changed` marks a call
at once. The sink runs on the loop, at most once per call per loop iteration (changes are
coalesced with `call_soon`), and must never block: it only queues the bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay.call import Call, CallClosed, CallCreated, Registry
from relay.call.events import CallEvent
from relay.ng.codec import bencode_encode
from relay.ng.commands import Commands
from relay.state.document import CallDocument, Entry, encode, encode_entry, media_key

logger = logging.getLogger(__name__)

Sink = Callable[[str, "bytes | None"], None]
"""(call_id, document bytes), or (call_id, None): the call ended, its key goes."""

JOURNALLED = frozenset({
    "offer", "answer", "delete", "start recording", "stop recording", "pause recording",
    "block DTMF", "unblock DTMF", "block media", "unblock media", "silence media",
    "unsilence media",
})  # fmt: skip
"""Call-scoped commands that change state (docs/design/redis-state.md); query, list,
statistics, ping, play media/DTMF and stop media are not journalled (publish/subscribe are
not built: rtpvault answers them with an error)."""


@dataclass(slots=True)
class _State:
    call: Call
    doc: CallDocument
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    entries: list[str] = field(default_factory=list)
    """`doc.ng` encoded (relay.state.document.encode_entry), one text per entry."""


def media_state(call: Call, previous: dict[str, dict[str, Any]] | None = None
                ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """What media (not signalling) made of the call's streams: each confirmed stream's learned
    peer, the SRTP keys a DTLS handshake gave it (keys a restore applied, from `previous`,
    while the stream still uses them) and, on the stream that is the local end of its ICE
    component's selected pair, that pair's remote address."""
    out: dict[str, dict[str, Any]] = {}
    for party in call.all_parties():
        for side in party.medias:
            for stream in side.all_streams():
                if not stream.local_port:
                    continue
                entry: dict[str, Any] = {}
                if stream.confirmed and stream.peer is not None:
                    entry["peer"] = [stream.peer[0], stream.peer[1]]
                transport = stream.transport
                if transport is not None and transport.keys_from is not None:
                    keys = transport.keys_from.keys
                    role = transport.keys_from.role
                    if keys is not None:
                        entry["srtp"] = {"profile": keys.profile.openssl_name,
                                         "local": keys.local(role).hex(),
                                         "remote": keys.remote(role).hex()}  # fmt: skip
                link = transport.ice if transport is not None else None
                if transport is not None and link is not None:
                    local = link.agent.sockets.get(transport.ice_key)
                    selected = None if local is None else link.agent.selected(local.component)
                    if selected is not None and selected[0] == transport.ice_key:
                        entry["ice"] = {"remote": [selected[1][0], selected[1][1]]}
                key = media_key(stream.local_address, stream.local_port)
                if (transport is not None and "srtp" not in entry and previous
                        and transport.keys_from is None and transport.srtp_in is not None
                        and "srtp" in previous.get(key, {})):  # fmt: skip
                    entry["srtp"] = previous[key]["srtp"]
                if entry:
                    out[key] = entry
    return out


class Journal:
    """Keeps each call's document and hands new ones to `sink` (see the module doc)."""

    def __init__(self, commands: Commands, registry: Registry, node: str, sink: Sink) -> None:
        self.commands = commands
        self.registry = registry
        self.node = node
        self.sink = sink
        self._calls: dict[str, _State] = {}
        self._dirty: dict[str, None] = {}
        self._scheduled = False
        self._base_clock = registry.wallclock
        self._reads: list[float] = []
        # every wall-clock read of the call model is kept for the request's entry
        registry.wallclock = registry.teardown.wallclock = self._wallclock
        registry.streams.taken = []  # the allocator records ports from now on
        self.written = 0
        """Documents handed to the sink (deletions included)."""
        commands.observers.append(self.observe)
        registry.listeners.append(self.on_event)
        registry.tickers.append(self.poll_media)

    # -- hooks --------------------------------------------------------------------------------

    def observe(self, command: str, body: dict[str, Any], reply: dict[str, Any],
                source: tuple[str, int], received: float) -> None:  # fmt: skip
        """The Commands observer: after each request's reply."""
        taken = self.registry.streams.taken or []
        if taken:
            self.registry.streams.taken = []
        reads, self._reads = self._reads, []
        if command not in JOURNALLED:
            return
        result = reply.get("result")
        if result != "ok" and command != "offer":
            return
        call_id = Commands.call_id_of(command, body)
        if call_id is None:
            return
        call = self.registry.calls.get(call_id)
        if call is None:
            return  # a delete that ended it (CallClosed follows), or nothing to journal
        error = None
        if result != "ok":
            known = self._calls.get(call_id)
            if result != "error" or (known is not None and known.call is call):
                return  # a refusal that changed nothing
            # an offer refused after it made the call (no usable media: rtpengine keeps the
            # call and its parties): replayed, it must make them again
            error = str(reply.get("error-reason", ""))
        state = self._state(call)
        entry = Entry(received, (source[0], source[1]), bencode_encode(body), tuple(taken),
                      tuple(reads), error)  # fmt: skip
        state.doc.ng.append(entry)
        state.entries.append(encode_entry(entry))
        self._mark(call_id)

    def on_event(self, event: CallEvent) -> None:
        """The Registry listener: a closed call's key goes; a restored call is known at once."""
        call = event.call
        if isinstance(event, CallClosed):
            state = self._calls.get(call.call_id)
            if state is not None and state.call is call:
                del self._calls[call.call_id]
                self._mark(call.call_id)
        elif isinstance(event, CallCreated) and call.call_id in self._calls:
            if self._calls[call.call_id].call is not call:  # a new call under an old id
                del self._calls[call.call_id]

    def poll_media(self) -> None:
        """The Registry ticker (about once a second): calls whose media state changed."""
        self._reads = []  # the sweep's own reads belong to no request
        for call_id, state in self._calls.items():
            self._refresh_media(call_id, state)

    def media_changed(self, call_id: str) -> None:
        """Something of the call's media state changed now (a latch, keys, an ICE pair)."""
        state = self._calls.get(call_id)
        if state is not None:
            self._refresh_media(call_id, state)

    # -- the API other parts use -------------------------------------------------------------

    def set_extra(self, call_id: str, key: str, value: Any) -> None:
        """JSON-able state owned by another part (the recorder: key "recording"); marks the
        call dirty. Ignored for a call the journal does not know (nothing journalled yet)."""
        state = self._calls.get(call_id)
        if state is None:
            call = self.registry.calls.get(call_id)
            if call is None:
                return
            state = self._state(call)
        state.doc.extra[key] = value
        self._mark(call_id)

    def document(self, call_id: str) -> bytes | None:
        """The call's document now (None: no such call journalled)."""
        state = self._calls.get(call_id)
        if state is None:
            return None
        state.doc.media = state.media
        return encode(state.doc, state.entries)

    def seed(self, call: Call, doc: CallDocument) -> None:
        """relay.state.replay: the restored call goes on with the stored entries and extra
        (nothing is written: the stored document is current). Extra set while the replay ran
        (the recorder's note of its new part) wins over the stored one and is written."""
        during = self._calls.get(call.call_id)
        extra = dict(doc.extra)
        if during is not None:
            extra.update(during.doc.extra)
        new = CallDocument(call.call_id, self.node, call.seed, call.created, list(doc.ng),
                           dict(doc.media), extra)  # fmt: skip
        self._calls[call.call_id] = _State(call, new, media_state(call, doc.media),
                                           [encode_entry(e) for e in doc.ng])  # fmt: skip
        self._dirty.pop(call.call_id, None)
        if during is not None and during.doc.extra:
            self._mark(call.call_id)

    def flush(self) -> None:
        """Hand every changed call's document (or None) to the sink, once each."""
        self._scheduled = False
        dirty, self._dirty = self._dirty, {}
        for call_id in dirty:
            try:
                self.sink(call_id, self.document(call_id))
                self.written += 1
            except Exception:  # the sink only queues: a failure is logged, never raised
                logger.exception("state sink failed", extra={"call_id": call_id})

    # -- inside -------------------------------------------------------------------------------

    def _wallclock(self) -> float:
        now = self._base_clock()
        self._reads.append(now)
        return now

    def _state(self, call: Call) -> _State:
        state = self._calls.get(call.call_id)
        if state is None or state.call is not call:
            doc = CallDocument(call.call_id, self.node, call.seed, call.created,
                               extra=dict(call.restored or {}))  # fmt: skip
            state = self._calls[call.call_id] = _State(call, doc)
        return state

    def _refresh_media(self, call_id: str, state: _State) -> None:
        """Take the call's media state anew; a change marks the call."""
        media = media_state(state.call, state.media)
        if media != state.media:
            state.media = media
            self._mark(call_id)

    def _mark(self, call_id: str) -> None:
        self._dirty[call_id] = None
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (tools, tests): at once
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)
