"""The ng command table: command name → handler (docs/spec/ng-protocol.md §2).

Handlers take the decoded request dict and the source address and return the reply dict, or
raise `NgError(reason)` for an error reply. Error texts and check order are rtpengine 10.5's.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from relay.call import Call, CallError, CallUpdated, Registry, media_gates
from relay.cint import strtoll
from relay.limits import NO_LIMITS, SESSIONS, DaemonLimits, WorkerLimits
from relay.ng.callstats import call_stats
from relay.ng.errors import NgError
from relay.ng.flags import NgFlags, call_options, parse_flags
from relay.ng.media_commands import MediaCommands
from relay.ng.sdp_view import SdpUnsupported, prepare
from relay.ng.unimplemented import (
    CALL_ID_KEYS,
    STRTOLL,
    Selector,
    int_str,
    not_supported,
    option,
)

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], tuple[str, int]], dict[str, Any]]
Observer = Callable[[str, dict[str, Any], dict[str, Any], tuple[str, int], float], None]
"""Called after every command with (command, request, reply, source, wall-clock time received);
an error is passed as the reply rtpengine sends (`result: error`, `error-reason`). Observers
(HEP ng trace, metrics) must not raise; an exception is logged and ignored."""

# Names in rtpengine's order (statistics lists per-command figures in this order).
COMMAND_NAMES = (
    "ping", "offer", "answer", "delete", "query", "list", "start recording", "stop recording",
    "start forwarding", "stop forwarding", "block DTMF", "unblock DTMF", "block media",
    "unblock media", "play media", "stop media", "play DTMF", "statistics", "silence media",
    "unsilence media", "publish", "subscribe request", "subscribe answer", "unsubscribe",
)
# rtpengine's short names in controlstatistics, same order.
SHORT_NAMES = (
    "ping", "offer", "answer", "delete", "query", "list", "startrec", "stoprec", "startfwd",
    "stopfwd", "blkdtmf", "unblkdtmf", "blkmedia", "unblkmedia", "playmedia", "stopmedia",
    "playdtmf", "stats", "slnmedia", "unslnmedia", "pub", "subreq", "subans", "unsub",
)

NOT_FOUND = "Call-ID not found or tags didn't match"


class Delays:
    """Handling times of one command, aggregated (a list per command grew without bound)."""

    __slots__ = ("count", "total", "low", "high")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.low = 0.0
        self.high = 0.0

    def add(self, seconds: float) -> None:
        if not self.count or seconds < self.low:
            self.low = seconds
        if seconds > self.high:
            self.high = seconds
        self.count += 1
        self.total += seconds

    @property
    def average(self) -> float:
        return self.total / self.count if self.count else 0.0


def _now(work: Callable[[], None]) -> None:
    work()


RecordingState = Callable[[str], tuple[str | None, str | None]]
"""A call's (newest recording's pcap path, why the last recording asked for could not be
created); the recorder answers it, offer/answer replies name both while `record` is on."""


def _first(parts: Sequence[Any]) -> dict[str, Any]:
    return dict(parts[0])


def _no_recording(call_id: str) -> tuple[str | None, str | None]:
    return None, None


def _str(body: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = body.get(key)
        if isinstance(value, str):
            return value
    return None


def _call_id(body: dict[str, Any]) -> str:
    call_id = _str(body, "call-id")
    if call_id is None:
        raise NgError("No call-id in message")
    return call_id


_INT_MAX = 2**31 - 1


def _delete_delay(body: dict[str, Any]) -> int:
    """`delete-delay`, else `delete delay`, else the legacy prefix parse of a `delete-delay`
    string ("5x" → 5), as rtpengine 10.5's `call_delete_ng`; negative = the daemon default."""
    delay = int_str(body.get("delete-delay"), -1)
    if delay == -1:
        delay = int_str(body.get("delete delay"), -1)
        legacy = body.get("delete-delay")
        if delay == -1 and isinstance(legacy, str):
            m = STRTOLL.match(legacy)
            if m:
                value = strtoll(m.group(1))
                delay = -1 if value > _INT_MAX else value
    return (delay + 2**31) % 2**32 - 2**31  # stored in a C int


class Commands:
    """Executes ng commands against a call registry."""

    def __init__(
        self,
        registry: Registry,
        statistics: Callable[[], Any] | None = None,
        limits: WorkerLimits | None = None,
    ) -> None:
        self.registry = registry
        self.limits = limits or DaemonLimits(1, NO_LIMITS).worker(0)
        """This worker's share of the daemon-wide limits (max-sessions, -load, -cpu, -bandwidth)."""
        registry.teardown.counted = self.limits.publish_sessions
        registry.tickers.append(self._measure)
        self._reserved = False
        """An offer for a new call holds a session of the limit (relay.limits)."""
        self._statistics = statistics
        media = MediaCommands(registry)
        self.table: dict[str, Handler] = {
            "ping": self.ping,
            "offer": self.offer,
            "answer": self.answer,
            "delete": self.delete,
            "query": self.query,
            "list": self.list,
            "statistics": self.statistics,
            "start recording": self.start_recording,
            "stop recording": self.stop_recording,
            "pause recording": self.pause_recording,
            "play media": media.play_media,
            "stop media": media.stop_media,
            "play DTMF": media.play_dtmf,
            "block DTMF": media.block_dtmf,
            "unblock DTMF": media.unblock_dtmf,
            "block media": media.block_media,
            "unblock media": media.unblock_media,
            "silence media": media.silence_media,
            "unsilence media": media.unsilence_media,
            "publish": self.publish,
            "subscribe request": self.subscribe_request,
            "subscribe answer": self.subscribe_answer,
            "unsubscribe": self.unsubscribe,
        }
        for name in COMMAND_NAMES:
            self.table.setdefault(name, self.unsupported)
        self.delays: dict[str, Delays] = {name: Delays() for name in self.table}
        self.observers: list[Observer] = []
        self.defer: Callable[[Callable[[], None]], None] = _now
        """How observers are run: at once, or (the daemon) after the reply is sent."""
        self.recording_state: RecordingState = _no_recording
        """Set by the recorder (the composition root)."""
        self.merge_statistics: Callable[[Sequence[Any]], dict[str, Any]] = _first
        """Every worker's `statistics` part (what `statistics()` returns) into the reply's
        dict (relay.ng.statistics.reply; set by the daemon)."""

    @property
    def max_sessions(self) -> int:
        """The daemon-wide max-sessions now (`set maxsessions` changes it for all workers)."""
        return self.limits.max_sessions

    def _measure(self) -> None:
        """Once a second (Registry.sweep): what the limits measure, this worker's relayed bytes
        per second only while a bandwidth limit is set (one pass over the streams)."""
        relayed = self.registry.relayed()[1] if self.limits.measures_bandwidth else None
        self.limits.tick(time.monotonic(), relayed)

    def dispatch(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        command = body.get("command")
        if not isinstance(command, str):
            raise NgError('Dictionary contains no key "command"')
        handler = self.table.get(command)
        if handler is None:
            raise NgError("Unrecognized command")
        delays = self.delays[command]
        started = time.perf_counter()
        if not self.observers:
            try:
                return handler(body, source)
            finally:
                delays.add(time.perf_counter() - started)
        received = time.time()
        try:
            reply = handler(body, source)
        except NgError as exc:
            error = {"result": "error", "error-reason": exc.reason}
            self.defer(lambda: self._observe(command, body, error, source, received))
            raise
        finally:
            delays.add(time.perf_counter() - started)
        self.defer(lambda: self._observe(command, body, reply, source, received))
        return reply

    def _observe(self, command: str, body: dict[str, Any], reply: dict[str, Any],
                 source: tuple[str, int], received: float) -> None:
        for observer in self.observers:
            try:
                observer(command, body, reply, source, received)
            except Exception:
                logger.exception("ng observer failed")

    # -- commands -----------------------------------------------------------------------------

    def ping(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return {"result": "pong"}

    def offer(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        try:
            return self._offer_answer(body, offer=True)
        finally:
            if self._reserved:  # the session reserved for a new call is now a call, or nothing
                self._reserved = False
                self.limits.publish_sessions(len(self.registry.calls))

    def _refuse(self, refusal: str, body: dict[str, Any], call_id: str) -> dict[str, Any]:
        """A new call over a daemon-wide limit (docs/spec/ng-protocol.md §2.2, load limit)."""
        if refusal == SESSIONS:  # rtpengine counts only these as rejected sessions
            self.registry.totals.rejected += 1
        logger.warning("%s", refusal, extra={"call_id": call_id})
        supports = body.get("supports")
        if isinstance(supports, list) and "load limit" in supports:
            return {"result": "load limit", "message": refusal}
        raise NgError(SESSIONS)  # the legacy protocol knows only this reason

    def answer(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return self._offer_answer(body, offer=False)

    def _offer_answer(self, body: dict[str, Any], *, offer: bool) -> dict[str, Any]:
        # call_ng_process_flags walks all keys: of several spellings the last counts, and a
        # value that is not a string clears it; tags have only one spelling.
        sdp = option(body, "sdp", "SDP")
        if sdp is None:
            raise NgError("No SDP body in message")
        call_id = option(body, *CALL_ID_KEYS)
        if call_id is None:
            raise NgError("No call-id in message")
        from_tag = option(body, "from-tag")
        if from_tag is None:
            raise NgError("No from-tag in message")
        to_tag = option(body, "to-tag")
        if not offer and to_tag is None:
            raise NgError("No to-tag in message")
        flags = parse_flags(body)
        reg = self.registry
        # rtpengine's order: parse the SDP, then the session limit, then look the call up.
        refused: str | None = None
        if sdp != "":
            try:
                desc, offered, render = prepare(sdp, flags, offer)
            except SdpUnsupported as exc:
                refused = str(exc)  # rtpvault's own refusal: after rtpengine's checks
            except ValueError:
                raise NgError("Failed to parse SDP") from None
        if offer and call_id not in reg.calls:
            refusal = self.limits.admit_new_call()
            if refusal is not None:
                return self._refuse(refusal, body, call_id)
            self._reserved = True
        if sdp == "":
            if offer:
                reg.touch(call_id, from_tag, to_tag or None)
                return {"result": "ok"}
            if call_id not in reg.calls:
                raise NgError("Unknown call-id")
            return {"result": "ok"}
        if not offer and call_id not in reg.calls:
            raise NgError("Unknown call-id")
        if refused is not None:
            raise NgError(refused)
        if not offered.media:
            if offer:
                reg.touch(call_id, from_tag, to_tag or None)
            raise NgError("Error rewriting SDP")
        options = call_options(flags)
        try:
            if offer:
                out = reg.offer(call_id, from_tag, to_tag or None, offered, options, render)
            else:
                assert to_tag is not None
                out = reg.answer(call_id, from_tag, to_tag, offered, options, render)
        except CallError as exc:
            raise NgError(exc.reason) from None
        self._log_flags(flags, call_id)
        call = reg.calls.get(call_id)
        if call is not None:
            media_gates.refresh(call, reg.streams.plane)  # new streams or payload types
        if call is None or not call.record:
            return {"sdp": out, "result": "ok"}
        # rtpengine's key order with recording on: recordings, sdp, result
        # (docs/spec/recording.md §5.1); a recording that could not be created: no file to name,
        # a `warning` (docs/spec/ng-protocol.md §2.2: `result` ok plus `warning` for non-fatal
        # problems) and the media still relayed
        path, error = self.recording_state(call_id)
        reply: dict[str, Any] = {"recordings": [path]} if path else {}
        reply["sdp"] = out
        if error:
            reply["warning"] = error
        reply["result"] = "ok"
        return reply

    @staticmethod
    def _log_flags(flags: NgFlags, call_id: str) -> None:
        for word in flags.unknown:
            logger.warning("Unknown flag encountered: '%s'", word, extra={"call_id": call_id})

    def delete(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        call_id = _call_id(body)
        flags = parse_flags(body)
        from_tag = _str(body, "from-tag")
        to_tag = _str(body, "to-tag")
        reg = self.registry
        call = reg.calls.get(call_id)
        target = None
        if call is not None and from_tag:
            target = reg.delete_target(call, from_tag, to_tag, _str(body, "via-branch"))
        if call is None or (from_tag and target is None):
            if flags.has("fatal"):
                raise NgError(NOT_FOUND)
            return {"warning": NOT_FOUND, "result": "ok"}
        if target is None:  # no from-tag: the whole call, and no statistics
            reg.delete_call(call, _delete_delay(body))
            return {"result": "ok"}
        stats = self._stats(call, from_tag, to_tag)
        reg.delete_party(call, target, _delete_delay(body))
        return {**stats, "result": "ok"}

    def _stats(self, call: Call, from_tag: str | None, to_tag: str | None) -> dict[str, Any]:
        """rtpengine's `ng_call_stats`: the to-tag's party (else the from-tag's) and those it
        receives from; a tag that names no (live) party gives empty `tags`; no tag, all."""
        match = to_tag or from_tag
        if not match:
            return call_stats(call)
        return call_stats(call, {match}, self.registry.live_party(call, match))

    def query(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        call_id = _call_id(body)
        call = self.registry.calls.get(call_id)
        if call is None:
            raise NgError("Unknown call-id")
        stats = self._stats(call, _str(body, "from-tag"), _str(body, "to-tag"))
        return {**stats, "result": "ok"}

    ONLY_CALL_ID = frozenset({"delete", "query", "start recording", "stop recording",
                              "pause recording"})  # fmt: skip
    """Commands that read the call-id under "call-id" only; the others take the last of its
    spellings (CALL_ID_KEYS), as rtpengine 10.5 does."""

    @staticmethod
    def call_id_of(command: str, body: dict[str, Any]) -> str | None:
        """The call the command acts on, read as the command reads it (rtpvault.shard routes
        requests by it)."""
        if command in Commands.ONLY_CALL_ID:
            return _str(body, "call-id")
        return option(body, *CALL_ID_KEYS)

    # --- commands about the whole daemon: one part per worker, merged (rtpvault.shard) -----------

    WIDE = frozenset({"list", "statistics"})

    def wide_ok(self, command: str, body: dict[str, Any]) -> bool:
        """False when the request is refused before any call is looked at (its error reply is
        the same from every worker)."""
        return command != "list" or int_str(body.get("limit"), 32) >= 0

    def part(self, command: str) -> Any:
        """This process's share of a whole-daemon command."""
        if command == "list":
            return [(call.created, call_id) for call_id, call in self.registry.calls.items()]
        return self._statistics() if self._statistics else {}

    def merge(self, command: str, parts: Sequence[Any], body: dict[str, Any]) -> dict[str, Any]:
        """The reply from every worker's `part`, in worker order."""
        if command == "list":
            limit = int_str(body.get("limit"), 32)  # "2 " is not a number to rtpengine: 32
            if limit < 0:
                raise NgError("invalid limit, must be >= 0")
            # one process lists its calls oldest first: the workers' lists interleaved so
            oldest = heapq.merge(*parts, key=lambda created_id: created_id[0])
            return {"calls": [call_id for _, call_id in itertools.islice(oldest, limit)],
                    "result": "ok"}  # fmt: skip
        merged = self.merge_statistics(parts) if parts else {}
        return {"statistics": merged, "result": "ok"}

    def wide(self, command: str, parts: Sequence[Any], body: dict[str, Any],
             source: tuple[str, int], started: float, received: float) -> dict[str, Any]:
        """`merge`, timed and observed as `dispatch` times and observes a command (`started`:
        time.perf_counter(), `received`: time.time() when the request came in)."""
        try:
            reply = self.merge(command, parts, body)
        finally:
            self.delays[command].add(time.perf_counter() - started)
        if self.observers:
            self.defer(lambda: self._observe(command, body, reply, source, received))
        return reply

    def list(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return self.merge("list", [self.part("list")], body)

    def statistics(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return self.merge("statistics", [self.part("statistics")], body)

    def start_recording(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return self._recording(body, True)

    def stop_recording(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return self._recording(body, False)

    def pause_recording(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        """rtpvault's addition (rtpengine 10.5 answers "Unrecognized command"): the recording
        stays open but no media is written until `start recording` (PCI-DSS card capture)."""
        return self._recording(body, True, paused=True)

    def _recording(self, body: dict[str, Any], on: bool, paused: bool = False) -> dict[str, Any]:
        call_id = _call_id(body)
        call = self.registry.calls.get(call_id)
        if call is None:
            raise NgError("Unknown call-id")
        call.record = on
        call.record_paused = paused and on
        metadata = _str(body, "metadata")
        if metadata is not None:
            call.metadata = metadata
        self.registry.emit(CallUpdated(call))
        return {"result": "ok"}

    # -- commands rtpvault does not carry out yet: rtpengine's errors up to where it would act --

    def _selector(self) -> Selector:
        reg = self.registry
        return Selector(reg.calls, reg.live_party, lambda call: call.all_parties())

    def unsupported(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        """start/stop forwarding."""
        self._selector().match(body)
        raise not_supported(body)

    def publish(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        if option(body, "sdp", "SDP") is None:
            raise NgError("No SDP body in message")
        if option(body, *CALL_ID_KEYS) is None:
            raise NgError("No call-id in message")
        if option(body, "from-tag") is None:
            raise NgError("No from-tag in message")
        raise not_supported(body)

    def subscribe_request(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        self._selector().match_many(body)
        raise not_supported(body)

    def subscribe_answer(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        call = self._selector().call(body)
        to_tag = option(body, "to-tag")
        if to_tag is None:
            raise NgError("No to-tag in message")
        if not option(body, "sdp", "SDP"):
            raise NgError("No SDP body in message")
        if self.registry.live_party(call, to_tag) is None:
            raise NgError("To-tag not found")
        raise not_supported(body)

    def unsubscribe(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        self._selector().call(body)
        if option(body, "to-tag") is None:
            raise NgError("No to-tag in message")
        raise not_supported(body)
