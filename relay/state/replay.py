"""Rebuild one call from its document (docs/design/redis-state.md): the journalled requests
run again through the command handlers, at their recorded times, with the recorded ports
pinned and the call's RNG seeded from the document, so the call is the same call (same ports,
SDP, `query` answer); then the media state is applied (learned peers latched, SRTP keys).

Replayed requests call `commands.table[command](body, source)` directly: no ng observers
(HEP traces, metrics, the journal), no cookie cache, no admission counters beyond the
handler's own. On any failure the call and every port it took are released and
`RestoreError(reason)` is raised; the caller logs it and skips the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relay.call import Call, CallCreated, Registry
from relay.call.events import CallEvent
from relay.media.secure.transport import DTLS_SUITES
from relay.media.stream import Stream
from relay.ng.codec import bencode_decode
from relay.ng.commands import Commands
from relay.ng.errors import NgError
from relay.ports import PortPinned
from relay.srtp import open_context
from relay.srtp.suites import suite as suite_named
from relay.state.document import CallDocument, DocumentError, decode, split_media_key

if TYPE_CHECKING:
    from relay.state.journal import Journal

logger = logging.getLogger(__name__)


_REFUSED = {"result": "ok"}


class RestoreError(Exception):
    """Why one call could not be restored ("port 30012 taken on 127.0.0.1", "call already
    present", ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def restore(commands: Commands, registry: Registry, data: bytes,
            journal: Journal | None) -> Call:  # fmt: skip
    """Rebuild the call stored in `data` (see the module doc); `journal` (if any) goes on
    journalling it from the stored entries."""
    try:
        doc = decode(data)
    except DocumentError as exc:
        raise RestoreError(f"bad document: {exc}") from None
    if doc.call_id in registry.calls:
        raise RestoreError("call already present")
    if not doc.ng:
        raise RestoreError("no request journalled")
    streams = registry.streams
    real_wallclock = registry.wallclock
    saved = (registry.teardown.wallclock, registry.seed_source, registry.restoring,
             streams.pinned, streams.taken, registry.defer)  # fmt: skip
    at = [doc.created]
    reads: list[float] = []
    pending: list[Callable[[], None]] = []

    def wallclock() -> float:  # the times the request read the first time, then its last
        if reads:
            at[0] = reads.pop(0)
        return at[0]

    registry.wallclock = registry.teardown.wallclock = wallclock
    registry.seed_source = lambda: doc.seed
    registry.restoring = doc.extra
    registry.defer = pending.append
    streams.taken = []
    announced: list[Call] = []

    def created(event: CallEvent) -> None:
        if isinstance(event, CallCreated) and event.call.call_id == doc.call_id:
            announced.append(event.call)

    registry.listeners.append(created)
    try:
        _replay(commands, doc, at, reads, streams, pending)
        call = registry.calls.get(doc.call_id)
        if call is None:
            raise RestoreError("no call after the replay")
        if call.seed != doc.seed:
            raise RestoreError("call created before the replay")
        _apply_media(call, doc.media, registry)
        call.last_signal = real_wallclock()
    except Exception as exc:
        reason = exc.reason if isinstance(exc, RestoreError) else f"replay failed: {exc!r}"
        streams.pinned = None
        # listeners that saw the call created (the recorder) see it closed
        _release(registry, doc.call_id, pending, "forced" if announced else None)
        raise RestoreError(reason) from (None if isinstance(exc, RestoreError) else exc)
    finally:
        registry.listeners.remove(created)
        registry.wallclock = real_wallclock
        (registry.teardown.wallclock, registry.seed_source, registry.restoring, streams.pinned,
         streams.taken, registry.defer) = saved  # fmt: skip
    for work in pending:
        work()
    if journal is not None:
        journal.seed(call, doc)
    return call


def _replay(commands: Commands, doc: CallDocument, at: list[float], reads: list[float],
            streams: Any, pending: list[Callable[[], None]]) -> None:  # fmt: skip
    for n, entry in enumerate(doc.ng):
        try:
            body = bencode_decode(entry.body)
        except ValueError:
            raise RestoreError(f"request {n}: not bencode") from None
        command = body.get("command") if isinstance(body, dict) else None
        handler = commands.table.get(command) if isinstance(command, str) else None
        if handler is None:
            raise RestoreError(f"request {n}: unknown command {command!r}")
        streams.pinned = list(entry.ports)
        at[0] = entry.t
        reads[:] = entry.clock
        try:
            reply = handler(body, entry.src)
        except NgError as exc:
            if entry.error is None or exc.reason != entry.error:
                raise RestoreError(f"request {n} ({command}): {exc.reason}") from None
            reply = _REFUSED  # refused as the first time, the call made all the same
        except PortPinned as exc:
            raise RestoreError(exc.reason) from None
        if entry.error is not None and reply is not _REFUSED:
            raise RestoreError(f"request {n} ({command}) succeeded, it failed the first time")
        if streams.pinned:
            raise RestoreError(f"request {n} ({command}) took fewer ports than recorded")
        if reply.get("result") != "ok":
            raise RestoreError(f"request {n} ({command}): {reply.get('result')!r}")
        while pending:  # what the daemon runs after each reply (stream starts)
            pending.pop(0)()


def _streams(call: Call) -> dict[tuple[str, int], Stream]:
    out = {}
    for party in call.all_parties():
        for side in party.medias:
            for stream in side.all_streams():
                if stream.local_port:
                    out[(stream.local_address, stream.local_port)] = stream
    return out


def _apply_media(call: Call, media: dict[str, dict[str, Any]], registry: Registry) -> None:
    """Learned peers (the stream latched to them: media flows at once) and SRTP keys."""
    streams = _streams(call)
    plane = registry.streams.plane
    for key, state in media.items():
        stream = streams.get(split_media_key(key))
        if stream is None:
            logger.warning("restored media state for %s names no stream of the call", key,
                           extra={"call_id": call.call_id})  # fmt: skip
            continue
        peer = state.get("peer")
        if peer is not None:
            stream.peer = (peer[0], peer[1])
            stream.confirmed = True
        srtp = state.get("srtp")
        transport = stream.transport
        if isinstance(srtp, dict) and transport is not None and transport.srtp_in is None:
            _apply_srtp(transport, srtp)
        ice = state.get("ice")
        if isinstance(ice, dict) and transport is not None and transport.ice is not None:
            remote = ice.get("remote")
            if not (isinstance(remote, list) and len(remote) == 2
                    and isinstance(remote[0], str) and isinstance(remote[1], int)):  # fmt: skip
                raise RestoreError(f"bad ice state of {key}")
            # media goes to the pair at once; consent checks confirm it (relay.ice.agent)
            if transport.ice.agent.adopt(transport.ice_key, (remote[0], remote[1]), _now()):
                stream.peer = (remote[0], remote[1])
                stream.confirmed = True
        plane.update(stream)


def _now() -> float:
    """The ICE agents' clock: the loop's (relay.media.secure.icelink)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def _apply_srtp(transport: Any, srtp: dict[str, Any]) -> None:
    try:
        suite = suite_named(DTLS_SUITES[srtp["profile"]])
        local, remote = bytes.fromhex(srtp["local"]), bytes.fromhex(srtp["remote"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RestoreError(f"bad srtp state: {exc!r}") from None
    transport.srtp_in = open_context(suite, remote, outbound=False)
    transport.srtp_out = open_context(suite, local, outbound=True)


def _release(registry: Registry, call_id: str, pending: list[Callable[[], None]],
             reason: str | None) -> None:  # fmt: skip
    """The half-built call goes with every port it took (its streams' sockets); `reason`:
    its CallClosed (None: no event, nobody saw it created)."""
    call = registry.calls.get(call_id)
    if call is not None:
        registry.teardown.destroy(call, reason)
    while pending:
        try:
            pending.pop(0)()
        except Exception:
            logger.exception("releasing a failed restore", extra={"call_id": call_id})
