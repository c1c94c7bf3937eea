"""The recorder's worker thread: every file operation of every recording happens here.

Jobs come from the event loop through a queue (open, metadata, sidecar, finish); between jobs
the thread flushes every open recording's buffer at least every FLUSH_INTERVAL seconds, in
whole records (pcap has no footer, so a file cut at a record boundary is valid). A write that
fails (disk full, unwritable directory) truncates the file back to its last whole record, marks
the recording `failed` with the reason, logs one error and counts it; the call is not affected.
Periodic flushes are plain write(2) (survives kill -9); the finish fsyncs, hashes and renames,
in FINISHERS other threads (`recorder-finish-N`): an fsync on a busy disk or the hash of a long
call takes seconds, and the other recordings' flushes (and finishes) must not wait for it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from recorder import metafile
from recorder.recording import STATUS_COMPLETE, STATUS_FAILED, Recording

__all__ = ["Spool", "write_json_atomic", "sha256_file", "FLUSH_INTERVAL"]

logger = logging.getLogger("rtpvault.recorder")

FLUSH_INTERVAL = 0.5
FINISHERS = 4
"""Finisher threads: a finish waits on three fsyncs, and when many calls end at once (a burst
of hang-ups, shutdown) the disk completes concurrent ones together (250 fsyncs: about half the
time with 4 threads on this project's machine, 2026-12-06) instead of one after the other."""
META_MODE = 0o664


def write_json_atomic(path: str, text: str, fsync: bool = False) -> None:
    """Write `text` to `path` through a temporary file and rename (readers never see half)."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def sha256_file(path: str) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


class _Open:
    """Worker-side state of one recording: its descriptors and what reached the disk."""

    __slots__ = ("rec", "fd", "meta_fd", "size", "error_logged")

    def __init__(self, rec: Recording) -> None:
        self.rec = rec
        self.fd: int | None = None
        self.meta_fd: int | None = None
        self.size = 0
        self.error_logged = False


Emit = Callable[[dict[str, Any]], None]


class Spool:
    """Worker thread owning the files. `emit(doc)` is called (from this thread) whenever a
    recording reaches a final status, `announce(doc)` for an `announce` job (in queue order);
    the caller hops them onto its loop."""

    def __init__(
        self, emit: Emit, interval: float = FLUSH_INTERVAL, announce: Emit | None = None
    ) -> None:
        self.emit = emit
        self.announce = announce
        self.interval = interval
        self.jobs: queue.SimpleQueue[tuple[str, Any, Any]] = queue.SimpleQueue()
        self.open_recs: dict[int, _Open] = {}
        self.recorded_bytes = 0
        self.errors = 0
        self.last_flush = time.monotonic()
        self._errors_lock = threading.Lock()
        self.finishing: queue.SimpleQueue[tuple[_Open, bytes, float] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="recorder-spool", daemon=True)
        self.finishers = [
            threading.Thread(target=self._run_finisher, name=f"recorder-finish-{i}", daemon=True)
            for i in range(FINISHERS)
        ]
        self.thread.start()
        for finisher in self.finishers:
            finisher.start()

    # -- loop side ----------------------------------------------------------------------------
    def submit(self, job: str, rec: Recording | None = None, arg: Any = None) -> None:
        self.jobs.put((job, rec, arg))

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs, flush everything and stop the thread."""
        self.jobs.put(("stop", None, None))
        self.thread.join(timeout)
        for _ in self.finishers:  # after every finish the worker handed over
            self.finishing.put(None)
        for finisher in self.finishers:
            finisher.join(timeout)

    def flush_lag(self) -> float:
        return max(0.0, time.monotonic() - self.last_flush) if self.open_recs else 0.0

    # -- worker -------------------------------------------------------------------------------
    def _run(self) -> None:
        next_flush = time.monotonic() + self.interval
        while True:
            try:
                job, rec, arg = self.jobs.get(timeout=max(0.0, next_flush - time.monotonic()))
            except queue.Empty:
                job = ""
            if job == "stop":
                self._flush_all()
                return
            if job:
                try:
                    getattr(self, f"_job_{job}")(rec, arg)
                except Exception:  # a bug in one job must not stop the recorder
                    logger.exception("recorder job %s failed", job)
            if time.monotonic() >= next_flush:
                self._flush_all()
                next_flush = time.monotonic() + self.interval

    def _flush_all(self) -> None:
        for state in list(self.open_recs.values()):
            self._flush(state)
        self.last_flush = time.monotonic()

    def _fail(self, state: _Open, what: str, exc: OSError) -> None:
        rec = state.rec
        rec.writing = False
        if rec.failed:
            return
        rec.failed = True
        self._error()
        reason = f"{what}: {exc.strerror or exc} ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
        reason += f"; kept {state.size} bytes"
        rec.doc["status"] = STATUS_FAILED
        rec.doc["reason"] = reason
        if not state.error_logged:
            state.error_logged = True
            logger.error("recording failed: %s", reason, extra={"call_id": rec.call_id})
        self._write_sidecar(rec, json.dumps(rec.doc))  # the end event follows at finish

    def _error(self) -> None:
        with self._errors_lock:  # counted by both threads
            self.errors += 1

    def _job_open(self, rec: Recording, header: bytes) -> None:
        state = _Open(rec)
        self.open_recs[id(rec)] = state
        try:
            state.fd = os.open(rec.paths.pcap, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            self._fail(state, f"cannot create {rec.paths.pcap}", exc)
        else:
            self._write(state, header)
        try:
            state.meta_fd = os.open(rec.paths.meta_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            os.fchmod(state.meta_fd, META_MODE)
            if state.fd is not None:
                os.write(state.meta_fd, metafile.header(rec.paths.pcap))
        except OSError as exc:
            logger.error(
                "Could not open metadata file %s: %s",
                rec.paths.meta_tmp,
                exc,
                extra={"call_id": rec.call_id},
            )
            self._error()

    def _write(self, state: _Open, data: bytes) -> None:
        if state.fd is None or not data:
            return
        try:
            written = 0
            while written < len(data):
                written += os.write(state.fd, data[written:])
        except OSError as exc:
            try:  # give the file back its last whole record
                os.ftruncate(state.fd, state.size)
            except OSError:
                pass
            self._fail(state, f"cannot write {state.rec.paths.pcap}", exc)
            return
        state.size += len(data)
        self.recorded_bytes += len(data)

    def _flush(self, state: _Open) -> None:
        data = state.rec.take()
        if state.rec.failed:
            return
        self._write(state, data)
        meta = state.rec.take_meta()
        if meta and state.meta_fd is not None:
            try:
                os.write(state.meta_fd, meta)
            except OSError as exc:
                logger.error("cannot write %s: %s", state.rec.paths.meta_tmp, exc)

    def _job_flush(self, rec: Recording, _: Any) -> None:
        state = self.open_recs.get(id(rec))
        if state is not None:
            self._flush(state)

    def _job_sidecar(self, rec: Recording, text: str) -> None:
        self._write_sidecar(rec, text)

    def _job_announce(self, _: Recording, doc: dict[str, Any]) -> None:
        """Hand `doc` to `announce` after the jobs queued before it (its sidecar) are done."""
        if self.announce is not None:
            self.announce(doc)

    def _write_sidecar(self, rec: Recording, text: str, fsync: bool = False) -> None:
        try:
            write_json_atomic(rec.paths.sidecar, text, fsync)
        except OSError as exc:
            logger.error(
                "cannot write sidecar %s: %s",
                rec.paths.sidecar,
                exc,
                extra={"call_id": rec.call_id},
            )

    def _job_finish(self, rec: Recording, arg: tuple[bytes, float]) -> None:
        trailer, ended = arg
        state = self.open_recs.pop(id(rec), None)
        if state is None:
            return
        self._flush(state)
        self.finishing.put((state, trailer, ended))

    def _run_finisher(self) -> None:
        while (item := self.finishing.get()) is not None:
            try:
                self._complete(*item)
            except Exception:  # a bug in one finish must not stop the others
                logger.exception("finishing recording %s failed", item[0].rec.paths.pcap)

    def _complete(self, state: _Open, trailer: bytes, ended: float) -> None:
        """fsync, hash, metadata trailer and rename, final sidecar, `emit` (finisher thread)."""
        rec = state.rec
        doc = rec.doc
        if state.fd is not None:
            try:
                os.fsync(state.fd)
            except OSError as exc:
                self._fail(state, f"cannot sync {rec.paths.pcap}", exc)
            os.close(state.fd)
            try:
                doc["size"], doc["sha256"] = sha256_file(rec.paths.pcap)
            except OSError as exc:
                self._fail(state, f"cannot read back {rec.paths.pcap}", exc)
        if state.meta_fd is not None:
            try:
                os.write(state.meta_fd, trailer)
                os.fsync(state.meta_fd)
                os.close(state.meta_fd)
                os.rename(rec.paths.meta_tmp, rec.paths.meta_final)
            except OSError as exc:
                logger.error(
                    'Could not move metadata file "%s": %s',
                    rec.paths.meta_tmp,
                    exc,
                    extra={"call_id": rec.call_id},
                )
                self._error()
        doc["ended"] = ended
        if not rec.failed:
            doc["status"] = STATUS_COMPLETE
        self._write_sidecar(rec, json.dumps(doc), fsync=True)
        self.emit(dict(doc))
