"""Composition of the recorder: relay call events and ng replies in, recordings on disk out.

* `daemon.registry.listeners`: a call with `record` on gets a Recording (file names as
  rtpengine); its streams get a tap (re-scanned on every `CallUpdated`); `record_paused`
  pauses/resumes; `record` off or `CallClosed` finishes it. A `CallUpdated` from an SDP
  exchange brings the relay's parsed summary of that SDP (the sidecar's parties and codecs).
* `daemon.commands.recording_state`: per call, the newest recording's pcap path and why the
  last one could not be created, which offer/answer replies name (`recordings`, `warning`).
* `daemon.commands.observers`: each offer/answer while recording appends rtpengine's SDP block
  to the metadata file, an SDP packet to a pcapng file, and the SDP to the sidecar (every copy
  with its SDES keys, MIKEY data and ICE password redacted, rtp.redact); a `delete`
  that ends the call sets the recording's `ended` at once (sidecar and index row), while the
  file is finalised when the call is destroyed after delete-delay.
* `subscribe(fn)`: fn(sidecar) on the loop thread when a recording starts (once its first
  sidecar is on disk) and when it ends (complete / interrupted / failed, also the ones crash
  recovery finalises in `start()`).
* `stats()`: {"recordings": {status: count}, "recorded_bytes", "flush_lag_seconds",
  "recording_errors", "spool_free_bytes"}.
* Parts (docs/recording.md "Parts"): each recording's state a continuation needs goes into
  the call's Redis document (`daemon.journal.set_extra(call_id, "recording", …)`, when a
  journal is configured); a call rebuilt from Redis (`Call.restored`) goes on recording into
  part n+1 of the same series (new file names, sidecar `series` = the first part's id), while
  `start()`'s recovery finalises part n as `interrupted`.
* A recording that cannot be created (open(2) fails: EMFILE, unwritable spool; or the spool is
  below its `recording-min-free` reserve) is `failed` with the reason from the start: the ng
  reply carries `warning`, the log says so, the sidecar and the index row say why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from recorder import metafile
from recorder.diskspace import MIB
from recorder.formats import recording_format
from recorder.names import SUBDIRS, RecordingPaths, new_prefix
from recorder.parts import JOURNAL_KEY, continuation, journal_state
from recorder.recording import STATUS_RECORDING, Recording
from recorder.recovery import recover
from recorder.sidecar import Sidecar
from recorder.spool import Spool
from relay.call import Call, CallClosed, CallEvent, CallUpdated, Exchange, OfferedSession
from relay.config.keyfile import shown
from rtp.payload_types import STATIC_PAYLOAD_TYPES
from rtp.redact import redact_sdp
from rtpvault.component import DaemonContext, StartupError

logger = logging.getLogger("rtpvault.recording")

Subscriber = Callable[[dict[str, Any]], None]

DEFAULT_MIN_FREE_MIB = 16
"""`recording-min-free`: MiB of the spool kept free for sidecars, metadata and the index."""


def _split_meta(metadata: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (metadata or "").split("|"):
        key, sep, value = item.partition(":")
        if sep and key:
            out[key] = value
    return out


def sdp_summary(offered: OfferedSession) -> dict[str, Any]:
    """The sidecar's view of one SDP, from the relay's parse of it: {"user": o= user or None,
    "media": [{type, address, port, codecs: [{pt, name, rate}]}]} (docs/recording-sidecar.md)."""
    user = offered.origin_username
    media = []
    for m in offered.media:
        codecs = []
        for pt in m.formats:
            if not pt.isdigit():
                continue
            text = m.codec_names.get(pt)
            if text is not None:
                name, _, rest = text.partition("/")
                clock = rest.split("/")[0]
                rate = int(clock) if clock.isdigit() else 8000
            else:
                name, rate = STATIC_PAYLOAD_TYPES.get(int(pt), (str(int(pt)), 8000))
            codecs.append({"pt": int(pt), "name": name, "rate": rate})
        media.append({"type": m.type, "address": m.address, "port": m.port, "codecs": codecs})
    return {"user": user if user not in ("", "-") else None, "media": media}


def _journal_of(daemon: DaemonContext) -> Any:
    """The call-state journal (relay.state.journal.Journal) when Redis is configured, else
    None: `daemon.journal`, or the `redis_state` component's (attached after this one)."""
    journal = getattr(daemon, "journal", None)
    if journal is None:
        journal = getattr(getattr(daemon, "components", {}).get("redis_state"), "journal", None)
    return journal


def prepare_dirs(root: str) -> None:
    """rtpengine's start-up (docs/spec/recording.md §2.1): spool dir (0700, not recursive) and its
    subdirectories; rtpvault adds sidecars/. Raises StartupError on failure."""
    if os.path.exists(root) and not os.path.isdir(root):
        raise StartupError(f'spool file exists, but "{shown(root)}" is not a directory.', 255)
    try:
        for path, mode in ((root, 0o700), *((os.path.join(root, sub), 0o777) for sub in SUBDIRS)):
            try:
                os.mkdir(path, mode)
            except FileExistsError:  # made earlier, or by another worker starting with this one
                if not os.path.isdir(path):
                    raise
    except OSError as exc:
        reason = f"Failed to create spool directory {shown(root)}: {exc.strerror}"
        raise StartupError(reason, 255) from None


class RecordingComponent:
    def __init__(self, daemon: DaemonContext, root: str, fmt: str) -> None:
        self.daemon = daemon
        self.root = root.rstrip("/") or "/"
        self.fmt = recording_format(fmt)
        raw = getattr(daemon.settings, "raw", {}) or {}  # recording-node: as the archive names it
        self.node = raw.get("recording-node") or socket.gethostname()
        self.loop: asyncio.AbstractEventLoop = daemon.loop
        self.active: dict[str, Recording] = {}
        self.tapped: dict[str, dict[Any, Recording]] = {}
        self.subscribers: list[Subscriber] = []
        self.status: Counter[str] = Counter()
        self.status_of: dict[str, str] = {}
        self._late: queue.SimpleQueue[tuple[Subscriber, dict[str, Any]] | None] = (
            queue.SimpleQueue()
        )
        self.closing = False
        raw_min_free = raw.get("recording-min-free") or str(DEFAULT_MIN_FREE_MIB)
        self.spool = Spool(self._emit_threadsafe, announce=self._announce_threadsafe,
                           root=self.root, min_free=int(raw_min_free) * MIB)  # fmt: skip
        self._exchanges: dict[str, Exchange] = {}
        """Per call, the SDP exchange the next offer/answer observer records (same request)."""
        self._replies: dict[str, tuple[str | None, str | None]] = {}
        """Per call, what offer/answer replies say: (newest pcap path, why the last recording
        asked for could not be created)."""
        self._continued: set[str] = set()
        """Calls restored from Redis whose recording already went on in a new part: a later
        `start recording` in the same call is a recording of its own, as without Redis."""
        daemon.registry.listeners.append(self._on_call)
        daemon.commands.observers.append(self._on_ng)
        daemon.commands.recording_state = self.recording_state

    # -- events -------------------------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> None:
        self.subscribers.append(fn)

    def _emit(self, doc: dict[str, Any]) -> None:
        for fn in self.subscribers:
            try:
                fn(doc)
            except Exception:
                logger.exception("recording subscriber failed")

    def _count(self, doc: Mapping[str, Any]) -> None:
        old = self.status_of.get(doc["id"])
        if old is not None:
            self.status[old] -= 1
        self.status[doc["status"]] += 1
        if doc["status"] == STATUS_RECORDING:
            self.status_of[doc["id"]] = doc["status"]
        else:
            self.status_of.pop(doc["id"], None)

    def _final(self, doc: dict[str, Any]) -> None:
        self._count(doc)
        self._emit(doc)

    def _threadsafe(self, fn: Subscriber, doc: dict[str, Any]) -> None:
        if self.closing:  # close() delivers these itself, on the loop's thread
            self._late.put((fn, doc))
            return
        try:
            self.loop.call_soon_threadsafe(fn, doc)
        except RuntimeError:  # loop already closed
            self._late.put((fn, doc))

    def _emit_threadsafe(self, doc: dict[str, Any]) -> None:
        self._threadsafe(self._final, doc)

    def _announce_threadsafe(self, doc: dict[str, Any]) -> None:
        self._threadsafe(self._emit, doc)

    # -- component ----------------------------------------------------------------------------
    async def start(self) -> None:
        docs = await self.loop.run_in_executor(None, recover, self.root, self.node, self.fmt.link)
        for doc in docs:
            self._final(doc)

    def close(self) -> None:
        """Finish what is still open (the daemon terminated its calls before) and tell the
        subscribers on this (the loop's) thread as each recording is finalised, while the
        worker finalises the next ones: the index writes overlap the fsyncs instead of
        following all of them."""
        self.closing = True
        for call_id in list(self.active):
            self._finish(call_id, 0.0)

        def close_spool() -> None:
            try:
                self.spool.close()
            finally:
                self._late.put(None)

        threading.Thread(target=close_spool, name="recorder-close", daemon=True).start()
        while (item := self._late.get()) is not None:
            fn, doc = item
            fn(doc)

    def stats(self) -> dict[str, Any]:
        return {
            "recordings": {k: v for k, v in self.status.items() if v > 0},
            "recorded_bytes": self.spool.recorded_bytes,
            "flush_lag_seconds": round(self.spool.flush_lag(), 3),
            "recording_errors": self.spool.errors,
            "spool_free_bytes": self.spool.free_bytes,
        }

    # -- call events --------------------------------------------------------------------------
    def recording_state(self, call_id: str) -> tuple[str | None, str | None]:
        """(the pcap path of the call's newest recording, why the last recording asked for
        could not be created) for the offer/answer reply; (None, None) before any."""
        return self._replies.get(call_id, (None, None))

    def _on_call(self, event: CallEvent) -> None:
        call = event.call
        rec = self.active.get(call.call_id)
        if isinstance(event, CallClosed):
            self._exchanges.pop(call.call_id, None)
            self._replies.pop(call.call_id, None)
            self._continued.discard(call.call_id)
            if rec is not None:
                self._finish(call.call_id, time.time())
            return
        if not call.record:
            self._exchanges.pop(call.call_id, None)
            if rec is not None:
                self._finish(call.call_id, 0.0)
            return
        if rec is None:
            rec = self._start(call)
        now = time.time()
        if call.record_paused and rec.pause(now) or not call.record_paused and rec.resume(now):
            self._sidecar(rec)
        self._rescan(rec, call)
        if isinstance(event, CallUpdated) and event.exchange is not None:
            self._exchanges[call.call_id] = event.exchange  # for _on_ng, after the reply

    def _start(self, call: Call) -> Recording:
        prior = None if call.call_id in self._continued else continuation(call.restored)
        taken = prior.prefix if prior is not None else None
        prefix = new_prefix(call.call_id)
        while prefix == taken:  # part n's files stay where they are: recovery finalises them
            prefix = new_prefix(call.call_id)
        paths = RecordingPaths(self.root, prefix, self.fmt.suffix)
        now = time.time()
        doc: Sidecar = {"node": self.node, "tags": [], "parties": [], "codecs": [], "sdp": []}
        if prior is None:
            rec = Recording(call.call_id, paths, self.fmt, now, doc)
        else:
            self._continued.add(call.call_id)
            prior.seed(doc)  # parties and codecs as part n knew them (no ng reply to replay)
            rec = Recording(call.call_id, paths, self.fmt, now, doc, series=prior.series,
                            part=prior.part + 1)  # fmt: skip
            logger.info("call restored: recording %s goes on in part %d", prior.series,
                        prior.part + 1, extra={"call_id": call.call_id})  # fmt: skip
        rec.call_created = call.created
        self._update_doc(rec, call)
        self.active[call.call_id] = rec
        self.tapped[call.call_id] = {}
        comment = f"rtpvault recording\ncall-id: {call.call_id}\nmetadata: {call.metadata or ''}"
        if prior is not None:
            comment += f"\nrecording: {prior.series} part {prior.part + 1}"
        problem = self.spool.create(rec, rec.file_header(comment))
        if problem is None:
            self._replies[call.call_id] = (paths.pcap, None)
        else:  # the reply says so (`warning`), the log did (spool), the sidecar and row will
            newest, _ = self.recording_state(call.call_id)
            self._replies[call.call_id] = (newest, f"Recording not created: {problem}")
        self._count(rec.doc)
        if problem is not None:  # counted `failed` now, and only once when it ends
            self.status_of[rec.doc["id"]] = rec.doc["status"]
        self._sidecar(rec)
        # the start event (an index row) only once the sidecar is on disk: a kill -9 in between
        # must not leave a row that recovery, which works from the sidecars, cannot find
        self.spool.submit("announce", rec, dict(rec.doc))
        if problem is None:
            logger.info("recording to %s", paths.pcap, extra={"call_id": call.call_id})
        if call.restored is None:
            self._journal(call.call_id, journal_state(rec.doc))
        else:  # being replayed: the journal takes the stored document's state once it is done
            self.loop.call_soon(self._journal, call.call_id, journal_state(rec.doc))
        return rec

    def _journal(self, call_id: str, state: dict[str, Any] | None) -> None:
        """What a daemon restoring this call needs to go on recording it (None: nothing, the
        recording ended), in the call's Redis document; nothing without Redis."""
        journal = _journal_of(self.daemon)
        if journal is None or self.closing:
            return
        try:
            journal.set_extra(call_id, JOURNAL_KEY, state)
        except Exception:  # the recording itself goes on; a restore would start a new series
            logger.exception("cannot note the recording in the call's Redis state",
                             extra={"call_id": call_id})  # fmt: skip

    def _rescan(self, rec: Recording, call: Call) -> None:
        tapped = self.tapped[call.call_id]
        current = set(call.streams())
        taps = self.daemon.taps
        for stream in list(tapped):
            if stream not in current:
                taps.unsubscribe(stream, "recording")
                del tapped[stream]
        for stream in current:
            if stream in tapped:
                continue
            tap = rec.make_tap(stream.is_rtcp, (stream.local_address, stream.local_port))
            taps.subscribe(stream, "recording", tap)
            tapped[stream] = rec

    def _update_doc(self, rec: Recording, call: Call) -> None:
        doc = rec.doc
        meta = _split_meta(call.metadata)
        doc["metadata"] = call.metadata
        doc["meta"] = meta
        tags = [p.tag for p in call.all_parties() if p.tag]
        doc["tags"] = tags
        users = {p["tag"]: p.get("user") for p in doc["parties"]}
        offerer = next((p["tag"] for p in doc["parties"] if p["role"] == "offerer"), None)
        doc["caller"] = meta.get("from") or meta.get("caller") or users.get(offerer or "")
        doc["callee"] = meta.get("to") or meta.get("callee")

    def _finish(self, call_id: str, terminated: float) -> None:
        rec = self.active.pop(call_id, None)
        tapped = self.tapped.pop(call_id, {})
        for stream in tapped:
            self.daemon.taps.unsubscribe(stream, "recording")
        if rec is None:
            return
        now = time.time()
        rec.writing = False
        rec.finished = True
        call = self.daemon.registry.calls.get(call_id)
        if call is not None:
            if call.deleted_at is None:  # `stop recording`: a restored call records no part
                self._journal(call_id, None)
            self._update_doc(rec, call)
            metadata = call.metadata
        else:
            metadata = rec.doc.get("metadata")
        if rec.paused and rec.doc["pauses"] and rec.doc["pauses"][-1]["end"] is None:
            rec.doc["pauses"][-1]["end"] = rec.ended if rec.ended is not None else now
        if metadata:
            rec.note(now, f"rtpvault: metadata: {metadata}")
        codecs = self._codec_table(rec)
        rec.doc["streams"] = rec.stream_docs(lambda tag, pt: codecs.get((tag, pt)))
        names = [s["codec"] for s in rec.doc["streams"] if s["codec"]]
        rec.doc["codecs"] = sorted(set(names)) or rec.doc.get("codecs", [])
        trailer = metafile.trailer(terminated, rec.call_created, now, metadata)
        self.spool.submit("finish", rec, (trailer, rec.ended if rec.ended is not None else now))

    @staticmethod
    def _codec_table(rec: Recording) -> dict[tuple[str, int], str]:
        table: dict[tuple[str, int], str] = {}
        for party in rec.doc["parties"]:
            for m in party["media"]:
                for c in m["codecs"]:
                    table.setdefault((party["tag"], c["pt"]), c["name"])
        return table

    def _sidecar(self, rec: Recording) -> None:
        self.spool.submit("sidecar", rec, json.dumps(rec.doc))

    # -- ng replies ---------------------------------------------------------------------------
    def _on_delete(self, request: dict[str, Any], received: float) -> None:
        """A `delete` that ends the call ends its recording's time span: `ended` (and so the
        index's `duration`) is the delete, set now in the sidecar and the index row, although
        the file goes on until delete-delay has passed and is finalised then (as rtpengine)."""
        call_id = request.get("call-id")
        if not isinstance(call_id, str):
            return
        rec = self.active.get(call_id)
        if rec is None or rec.ended is not None:
            return
        call = self.daemon.registry.calls.get(call_id)
        if call is not None and call.deleted_at is None:
            return  # one branch or party went; the call (and the recording) goes on
        rec.ended = received
        if call is None:
            return  # deleted at once: `CallClosed` finishes it with this time
        rec.doc["ended"] = received
        self._sidecar(rec)
        self.spool.submit("announce", rec, dict(rec.doc))

    def _on_ng(
        self,
        command: str,
        request: dict[str, Any],
        reply: dict[str, Any],
        source: tuple[str, int],
        received: float,
    ) -> None:
        if command == "delete" and reply.get("result") == "ok":
            self._on_delete(request, received)
            return
        if command not in ("offer", "answer") or reply.get("result") != "ok":
            return
        call_id = request.get("call-id")
        if not isinstance(call_id, str):
            return
        exchange = self._exchanges.pop(call_id, None)
        rec = self.active.get(call_id)
        sdp_out = reply.get("sdp")
        if rec is None or exchange is None or not isinstance(sdp_out, str):
            return
        call = self.daemon.registry.calls.get(call_id)
        if call is None:
            return
        tag = exchange.tag
        party = call.parties.get(tag)
        label = party.label if party is not None else None
        started = rec.party_started.get(tag, party.created if party is not None else received)
        # keys, MIKEY and ICE passwords never reach the spool (rtp.redact, docs/recording.md)
        sdp_out = redact_sdp(sdp_out)
        rec.meta.append(metafile.sdp_block(label, started, command, rec.packets, sdp_out))
        now = time.time()
        rec.party_started[tag] = now
        sdp_sent = request.get("sdp")
        sdp_in = redact_sdp(sdp_sent) if isinstance(sdp_sent, str) else ""
        sdp_record = rec.fmt.sdp(received, sdp_out, f"{command} from tag {tag}")
        if sdp_record is not None:
            rec.chunks.append(sdp_record)
        summary = sdp_summary(exchange.offered)
        parties = rec.doc["parties"]
        entry = next((p for p in parties if p["tag"] == tag), None)
        if entry is None:
            entry = {"tag": tag, "label": label,
                     "role": "offerer" if command == "offer" else "answerer"}  # fmt: skip
            parties.append(entry)
        entry["label"] = label
        entry["user"] = summary["user"]
        entry["media"] = summary["media"]
        for m in summary["media"]:
            for c in m["codecs"]:
                rec.clock_rates.setdefault(c["pt"], c["rate"])
        rec.doc["codecs"] = sorted({c["name"] for p in parties for m in p["media"]
                                    for c in m["codecs"]})  # fmt: skip
        rec.doc["sdp"].append({"direction": command, "party": tag, "in": sdp_in, "out": sdp_out,
                               "time": received})  # fmt: skip
        self._update_doc(rec, call)
        self.spool.submit("flush", rec)
        self._sidecar(rec)
        self._journal(call_id, journal_state(rec.doc))


def attach(daemon: DaemonContext) -> RecordingComponent | None:
    settings = daemon.settings
    if settings.recording_dir is None:
        return None
    prepare_dirs(settings.recording_dir)
    return RecordingComponent(daemon, settings.recording_dir, settings.recording_format)
