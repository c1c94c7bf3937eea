"""The recorder's worker thread: every file operation of every recording happens here, except
the creation of its two files (`create`, on the loop: the ng reply must say whether the
recording exists).

Jobs come from the event loop through a queue (open, metadata, sidecar, finish); between jobs
the thread flushes every open recording's buffer at least every FLUSH_INTERVAL seconds, in
whole records (pcap has no footer, so a file cut at a record boundary is valid). A write that
fails (disk full, unwritable directory) truncates the file back to its last whole record, marks
the recording `failed` with the reason, logs one error and counts it; the call is not affected.
Periodic flushes are plain write(2) (survives kill -9); the finish fsyncs, hashes and renames,
in FINISHERS other threads (`recorder-finish-N`): an fsync on a busy disk or the hash of a long
call takes seconds, and the other recordings' flushes (and finishes) must not wait for it.

Full or read-only spool: below the free-space reserve (recorder.diskspace) every open recording
fails and new ones are refused, so the sidecars, metadata moves and index rows that say so still
fit. A sidecar that cannot be written is kept and written again at each flush until it can
(logged once), so it ends with the recording's final status.
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
import zlib
from collections.abc import Callable
from typing import Any

from recorder import filelock, metafile
from recorder.diskspace import SpaceWatch, measure
from recorder.recording import STATUS_COMPLETE, STATUS_FAILED, Recording

__all__ = ["Spool", "write_all", "write_json_atomic", "sha256_file", "FLUSH_INTERVAL"]

logger = logging.getLogger("rtpvault.recorder")

FLUSH_INTERVAL = 0.5
FINISHERS = 4
SIDECAR_LOCKS = 64
"""Finisher threads: a finish waits on three fsyncs, and when many calls end at once (a burst
of hang-ups, shutdown) the disk completes concurrent ones together (250 fsyncs: about half the
time with 4 threads on this project's machine, 2026-12-06) instead of one after the other."""
META_MODE = 0o664


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data`: write(2) may write less than asked (a nearly full disk, a signal),
    and the next call then reports why (ENOSPC) as an OSError."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # not expected from a regular file; never loop on it
            raise OSError(errno.EIO, "write(2) wrote nothing")
        view = view[n:]


def write_json_atomic(path: str, text: str, fsync: bool = False) -> None:
    """Write `text` to `path` through a temporary file and rename, so readers (and a crash)
    see the old document or the new one, never half of one. The temporary file is written in
    full and fsynced before the rename (on a full disk a short write would otherwise rename a
    truncated document over a good one); on any failure it is removed and the old document
    stays. `fsync=True` also syncs the directory, so the rename itself survives a crash."""
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            write_all(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if fsync:
        dfd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def describe(what: str, exc: OSError) -> str:
    """'cannot create X: Too many open files (EMFILE)': a failure's `reason`."""
    code = errno.errorcode.get(exc.errno or 0, exc.errno)
    return f"{what}: {exc.strerror or exc} ({code})"


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

    __slots__ = ("rec", "fd", "meta_fd", "size", "meta_error_logged")

    def __init__(self, rec: Recording) -> None:
        self.rec = rec
        self.fd: int | None = None
        self.meta_fd: int | None = None
        self.size = 0
        self.meta_error_logged = False


Emit = Callable[[dict[str, Any]], None]


class Spool:
    """Worker thread owning the files. `emit(doc)` is called (from this thread) whenever a
    recording reaches a final status, `announce(doc)` for an `announce` job (in queue order);
    the caller hops them onto its loop."""

    def __init__(
        self,
        emit: Emit,
        interval: float = FLUSH_INTERVAL,
        announce: Emit | None = None,
        root: str | None = None,
        min_free: int = 0,
    ) -> None:
        self.emit = emit
        self.space = SpaceWatch(root, min_free) if root is not None else None
        self._measure()
        self._owed: dict[str, tuple[Recording, str]] = {}
        """Sidecars not written yet (path → recording, text); retried at each flush."""
        self._locked: dict[str, int] = {}
        """Media files of finished recordings whose final sidecar is owed (path → descriptor):
        kept open, so locked, until it is written."""
        # The worker and the finishers may write the same sidecar (same `.tmp` name), so each
        # path has a lock; striped, so finishers writing different sidecars fsync in parallel
        # (one lock for all made the four finishers take turns at every sidecar fsync).
        self._sidecar_locks = [threading.Lock() for _ in range(SIDECAR_LOCKS)]
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

    def create(self, rec: Recording, header: bytes) -> str | None:
        """Create the recording's media and metadata files now (loop thread: two open(2) calls,
        so that the ng reply can say whether the recording exists) and queue the rest. Returns
        None, or why the recording was not created; it is then `failed` with that reason."""
        state = _Open(rec)
        reason = None
        if self.space is not None and self.space.low:
            reason = self.space.low_reason()
        else:
            try:
                state.fd = os.open(rec.paths.pcap, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                # held until the final sidecar is written: another process's start-up recovery
                # leaves a locked recording alone (recorder.filelock)
                if not filelock.hold(state.fd):
                    logger.error("%s is locked by another process", rec.paths.pcap,
                                 extra={"call_id": rec.call_id})  # fmt: skip
            except OSError as exc:
                reason = describe(f"cannot create {rec.paths.pcap}", exc)
        if reason is None:
            try:
                state.meta_fd = os.open(rec.paths.meta_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except OSError as exc:  # the media file is what counts: recorded without it
                logger.error("Could not open metadata file %s: %s", rec.paths.meta_tmp, exc,
                             extra={"call_id": rec.call_id})  # fmt: skip
                self._error()
        else:
            rec.writing = False
            rec.failed = True
            rec.doc["status"] = STATUS_FAILED
            rec.doc["reason"] = reason
            self._error()
            logger.error("recording not created: %s", reason, extra={"call_id": rec.call_id})
        self.jobs.put(("open", rec, (state, header)))
        return reason

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs, flush everything and stop the thread."""
        self.jobs.put(("stop", None, None))
        self.thread.join(timeout)
        for _ in self.finishers:  # after every finish the worker handed over
            self.finishing.put(None)
        for finisher in self.finishers:
            finisher.join(timeout)
        self._write_owed()
        for path in self._owed:
            logger.error("sidecar %s could not be written before shutdown", path)

    @property
    def free_bytes(self) -> int | None:
        return self.space.free if self.space is not None else None

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
        self._measure()
        if self.space is not None and self.space.low:
            for state in list(self.open_recs.values()):
                self._fail(state, self.space.low_reason())
        for state in list(self.open_recs.values()):
            self._flush(state)
        self._write_owed()
        self.last_flush = time.monotonic()

    def _measure(self) -> None:
        if self.space is not None:
            got = measure(self.space.root)
            if got is not None:
                self.space.observe(*got)

    def _fail(self, state: _Open, reason: str) -> None:
        rec = state.rec
        rec.writing = False
        if rec.failed:
            return
        rec.failed = True
        self._error()
        reason += f"; kept {state.size} bytes"
        rec.doc["status"] = STATUS_FAILED
        rec.doc["reason"] = reason
        logger.error("recording failed: %s", reason, extra={"call_id": rec.call_id})
        self._write_sidecar(rec, json.dumps(rec.doc))  # the end event follows at finish

    def _error(self) -> None:
        with self._errors_lock:  # counted by both threads
            self.errors += 1

    def _job_open(self, rec: Recording, arg: tuple[_Open, bytes]) -> None:
        state, header = arg
        self.open_recs[id(rec)] = state
        self._write(state, header)
        if state.meta_fd is not None:
            try:
                os.fchmod(state.meta_fd, META_MODE)
            except OSError:
                pass  # the mode is cosmetic
            if state.fd is not None:
                self._write_meta(state, metafile.header(rec.paths.pcap))

    def _write_meta(self, state: _Open, data: bytes) -> None:
        if state.meta_fd is None or not data:
            return
        try:
            write_all(state.meta_fd, data)
        except OSError as exc:
            if not state.meta_error_logged:  # once per recording, not at every flush
                state.meta_error_logged = True
                logger.error("cannot write %s: %s", state.rec.paths.meta_tmp, exc,
                             extra={"call_id": state.rec.call_id})  # fmt: skip
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
            self._fail(state, describe(f"cannot write {state.rec.paths.pcap}", exc))
            return
        state.size += len(data)
        self.recorded_bytes += len(data)

    def _flush(self, state: _Open) -> None:
        data = state.rec.take()
        if state.rec.failed:
            return
        self._write(state, data)
        self._write_meta(state, state.rec.take_meta())

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

    def _sidecar_lock(self, path: str) -> threading.Lock:
        return self._sidecar_locks[zlib.crc32(path.encode()) % SIDECAR_LOCKS]

    def _write_sidecar(
        self, rec: Recording, text: str, fsync: bool = False, lock_fd: int | None = None
    ) -> bool:
        """Write the sidecar, or keep it for `_write_owed` (logged once). `lock_fd`: the
        finished recording's media file, closed (so unlocked) once this sidecar is written."""
        path = rec.paths.sidecar
        with self._sidecar_lock(path):
            if lock_fd is not None:
                self._locked[path] = lock_fd
            try:
                write_json_atomic(path, text, fsync)
            except OSError as exc:
                if path not in self._owed:
                    logger.error("cannot write sidecar %s (retried at each flush): %s", path,
                                 exc, extra={"call_id": rec.call_id})  # fmt: skip
                    self._error()
                self._owed[path] = (rec, text)
                return False
            if self._owed.pop(path, None) is not None:
                logger.info("sidecar %s written", path, extra={"call_id": rec.call_id})
            self._unlock(self._locked.pop(path, None))
            return True

    def _write_owed(self) -> None:
        for path in list(self._owed):
            with self._sidecar_lock(path):
                owed = self._owed.get(path)
            if owed is not None and not self._write_sidecar(owed[0], owed[1], fsync=True):
                return  # the spool still refuses: the others wait for the next flush

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
                self._fail(state, describe(f"cannot sync {rec.paths.pcap}", exc))
            try:
                doc["size"], doc["sha256"] = sha256_file(rec.paths.pcap)
            except OSError as exc:
                self._fail(state, describe(f"cannot read back {rec.paths.pcap}", exc))
        if state.meta_fd is not None:
            self._finish_meta(state, trailer)
        doc["ended"] = ended
        if not rec.failed:
            doc["status"] = STATUS_COMPLETE
        self._write_sidecar(rec, json.dumps(doc), fsync=True, lock_fd=state.fd)
        self.emit(dict(doc))

    def _unlock(self, fd: int | None) -> None:
        """Close the media file, which releases its lock (recorder.filelock)."""
        if fd is not None:
            os.close(fd)

    def _finish_meta(self, state: _Open, trailer: bytes) -> None:
        """Trailer, fsync, and the move to metadata/ — the move even when the trailer did not
        fit (a full disk): a metadata file must not stay in tmp/ (recovery would take it for an
        unfinished recording)."""
        rec = state.rec
        assert state.meta_fd is not None
        self._write_meta(state, trailer)
        try:
            os.fsync(state.meta_fd)
        except OSError:
            pass  # reported by the write that could not complete
        os.close(state.meta_fd)
        try:
            os.rename(rec.paths.meta_tmp, rec.paths.meta_final)
        except OSError as exc:
            logger.error('Could not move metadata file "%s": %s', rec.paths.meta_tmp, exc,
                         extra={"call_id": rec.call_id})  # fmt: skip
            self._error()
