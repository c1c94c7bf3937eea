"""The daemon's archive part: recordings → index rows, finished recordings → S3 upload queue.

Subscribes to the recording part (rtpvault.recording) which hands over each recording's sidecar
document (docs/recording-sidecar.md) on the loop thread when it starts and when it ends
(complete / interrupted / failed, recovered ones included). The loop only puts the document on
a queue; one writer thread upserts rows (storage.ingest) and, for finished recordings with
`s3-bucket` set, adds the upload row in the same transaction and wakes the uploader threads
(storage.uploader). If the database is unreachable the writer keeps the documents and retries
with backoff (the sidecars on disk stay the source of truth: `rtpvault db reindex`).

Index location: `recording-db` unset → SQLite `recordings.db` inside `recording-dir`, created and
migrated automatically (the embedded default). An explicit `recording-db` must already be at the
newest schema, or the daemon refuses to start and says to run `rtpvault db upgrade`. A database
server that does not answer at start-up does not stop the relay: recording goes on (sidecars on
disk), the error is logged and counted, and the writer checks the schema and writes the waiting
rows (and the uploader starts) once the server answers.

Start-up reconciliation (crash safety, ARCHITECTURE rules 4 and 5): the documents of the events
are held in memory until written, so a `kill -9` between the recorder's finish (sidecar
`complete` on disk) and the index write, or while the database was unreachable, would leave a
row stuck at `recording` (or no row) and nothing queued for S3. Before its first document the
writer therefore reads the sidecar of every row of this node an earlier run left at
`recording`, and the sidecars modified since the start of this node's newest row (minus a
minute) up to this start, and writes the finished ones whose row is missing or differs.
Recordings crash recovery finalises arrive as events as usual. Processes sharing the spool and
the index (the `num-threads` workers) may read each other's fresh sidecars here: the same
document written by two processes gives the same rows (storage.ingest is idempotent, a refused
duplicate insert is written again as an update, one upload job per recording).

Purged from another host (storage.retention, docs/storage.md "Several nodes"): `rtpvault
purge` run where this node's files are not leaves their rows with status `purged`; the writer
looks for such rows of this node every PURGE_SWEEP seconds, removes their files and then the
rows (`purged_local` counts them). Each node does its own, the rows are taken under a row lock
(its `num-threads` workers skip each other's), so each is done once.

stats(): upload_queue_depth, upload_oldest_age_seconds, uploads {done, retry, failed},
uploaded_bytes (with a bucket), db_errors (failed index writes, retried), index_rejected
(documents the index refused: logged and skipped so one bad document cannot stall the rest),
index_pending, purged_local.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import queue
import socket
import threading
import time
from typing import Any, cast

from rtpvault.component import DaemonContext, SidecarPublisher, StartupError
from storage.backoff import Backoff

# storage (SQLAlchemy, Alembic, boto3) is imported only when a daemon records: ~35 MB of RSS a
# relay without recording-dir should not carry.

logger = logging.getLogger("rtpvault.archive")

FINAL = ("complete", "interrupted", "failed")
RECONCILE_MARGIN = 60.0  # seconds before the index's last word that sidecars are read again
BATCH = 200  # documents written in one transaction at most
WRITE_RACES = 3  # tries of a write refused as a duplicate (another process wrote it first)
PURGE_SWEEP = 5.0  # seconds between looks for this node's rows purged from another host
_STOP = object()


class ArchiveComponent:
    def __init__(
        self,
        index: Any,
        s3: Any,
        node: str,
        *,
        schema_checked: bool = True,
        root: str | None = None,
    ) -> None:
        from storage.uploader import Uploader

        self.index = index
        self.root = root
        # sidecars written from now on reach the writer as events; older ones are reconciled
        self._cutoff = time.time()
        self._reconciled = root is None
        self.reconciled = 0
        self.s3 = s3
        self.node = node
        self.uploader = Uploader(index, s3, node) if s3 is not None else None
        self.db_errors = 0
        self.rejected = 0
        self.purged_local = 0
        self._swept_at = 0.0
        # schema_checked=False: the database did not answer at start-up; the writer checks the
        # schema once it does, and only then writes rows and lets the uploader run
        self._schema_ok = schema_checked
        self._started = False
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._in_hand = 0  # the documents being written (or retried), out of the queue
        self._writer = threading.Thread(target=self._write_loop, name="index-writer", daemon=True)
        self._writer.start()
        self._depth: tuple[int, float] = (0, 0.0)
        self._depth_at = 0.0

    # -- events from the recorder (loop thread) -------------------------------------------------

    def on_recording(self, doc: dict[str, Any]) -> None:
        # a deep copy: the recorder goes on changing its nested lists (SDP, parties, pauses) on
        # this thread while the writer thread reads them (tens of µs for a call's document)
        self._queue.put(copy.deepcopy(doc))

    # -- writer thread --------------------------------------------------------------------------

    def _write_loop(self) -> None:
        backoff = Backoff(self._closing)
        while True:
            if not self._schema_ok:  # documents wait in the queue meanwhile
                if self._check_schema():
                    backoff.reset()
                else:
                    if backoff.wait():
                        return
                    continue
            if not self._reconciled:
                try:
                    self.reconciled += self._reconcile()
                    self._reconciled = True
                except Exception as exc:
                    if not _transient(exc):
                        self._reconciled = True
                        logger.exception("start-up reconciliation of the index failed")
                        continue
                    self.db_errors += 1
                    logger.error(
                        "start-up reconciliation of the index failed (retrying in %.1f s): %s",
                        backoff.delay,
                        str(exc).splitlines()[0],
                    )
                    if backoff.wait():
                        return
                    continue
            docs, stop = self._next_batch()
            self._in_hand = len(docs)
            if docs and not self._write_batch(docs):
                return
            self._in_hand = 0
            if stop:
                return
            self._sweep_purged()

    def _next_batch(self) -> tuple[list[Any], bool]:
        """The next document (waiting for it) and those queued behind it, up to BATCH; and
        whether the stop mark came. One transaction per batch: when many recordings end at once
        (shutdown, a burst of hang-ups) the index is not one commit per recording behind."""
        try:
            doc = self._queue.get(timeout=PURGE_SWEEP if self.root is not None else None)
        except queue.Empty:
            return [], False
        if doc is _STOP:
            return [], True
        docs = [doc]
        while len(docs) < BATCH:
            try:
                doc = self._queue.get_nowait()
            except queue.Empty:
                break
            if doc is _STOP:
                return docs, True
            docs.append(doc)
        return docs, False

    def _write_batch(self, docs: list[Any]) -> bool:
        """Write `docs` in one transaction, retrying while the database is unreachable; a
        refused batch is written document by document so one bad document costs only itself.
        False: closing while the database is unreachable (the sidecars stay on disk)."""
        backoff = Backoff(self._closing)
        while True:
            try:
                self._write(*docs)
                return True
            except Exception as exc:
                if not _transient(exc):  # a document itself is bad: retrying cannot help
                    if len(docs) > 1:
                        return all(self._write_batch([doc]) for doc in docs)
                    self.rejected += 1
                    doc = docs[0]
                    logger.error(
                        "recording document %r not indexed (its sidecar stays on disk): %s",
                        str(doc.get("id"))[:40] if isinstance(doc, dict) else doc,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    )
                    return True
                self.db_errors += 1
                logger.error(
                    "index write for %d recording(s) (%s …) failed (retrying in %.1f s): %s",
                    len(docs),
                    docs[0].get("id") if isinstance(docs[0], dict) else docs[0],
                    backoff.delay,
                    str(exc).splitlines()[0],
                )
                if backoff.wait():
                    return False

    def _sweep_purged(self) -> None:
        """Remove the files and rows of this node's recordings purged from another host."""
        now = time.monotonic()
        if self.root is None or now - self._swept_at < PURGE_SWEEP:
            return
        self._swept_at = now
        from storage.retention import any_purged_here, purged_here

        try:
            with self.index.engine.connect() as conn:  # a read, rolled back: no commit
                if not any_purged_here(conn, self.node):
                    return
            with self.index.session() as s:
                done: list[tuple[str, str, list[str]]] = []
                for rec in purged_here(s, self.node):
                    files = [p for p in (rec.path, rec.metadata_path, rec.sidecar_path) if p]
                    if self._remove_files(rec.id, files):
                        s.delete(rec)
                        done.append((rec.id, rec.call_id, files))
        except Exception as exc:  # the rows stay `purged`: the next sweep tries again
            self.db_errors += 1
            logger.error("removing recordings purged elsewhere failed: %s",
                         str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        if done:
            self.purged_local += len(done)
            logger.info("removed the files and rows of %d recording(s) purged from another "
                        "host (%s …)", len(done), done[0][0])  # fmt: skip
            self._audit_purged(done)

    def _audit_purged(self, done: list[tuple[str, str, list[str]]]) -> None:
        """One `purge-files` audit entry per recording, by this node: the end of the purge
        that another host's `rtpvault purge` (its own `purge` entry) left to it."""
        from storage.audit import chain

        for rid, call_id, files in done:
            try:
                chain.append(self.index, "purge-files", rid, {"call_id": call_id,
                             "node": self.node, "removed": files}, user=f"rtpvault@{self.node}")
            except Exception as exc:  # the files and row are gone: logged, not retried
                logger.error("audit entry for purged recording %s not written: %s", rid,
                             str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    @staticmethod
    def _remove_files(rid: str, paths: list[str]) -> bool:
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.error("purged recording %s: cannot remove %s: %s (row kept)", rid, path,
                             exc.strerror)  # fmt: skip
                return False
        return True

    def _check_schema(self) -> bool:
        from storage.db import check_schema

        try:
            check_schema(self.index.engine, self.index.url)
        except Exception as exc:
            self.db_errors += 1
            logger.error(
                "recording-db not usable yet, %d document(s) waiting: %s",
                self._queue.qsize(),
                str(exc).splitlines()[0],
            )
            return False
        logger.info("recording-db answers with the current schema: indexing resumes")
        with self._lock:
            self._schema_ok = True
            if self._started and self.uploader is not None:
                self.uploader.start()
        return True

    def _reconcile(self) -> int:
        """Write the finished sidecars of earlier runs whose row is missing or out of date."""
        from sqlalchemy import func, select

        from storage.models import Recording

        assert self.root is not None
        sidecars = os.path.join(self.root, "sidecars")
        with self.index.session() as s:
            # rows an earlier run left at `recording`: their own sidecar says how they ended
            stuck = s.execute(
                select(Recording.path, Recording.sidecar_path).where(
                    Recording.status == "recording",
                    Recording.node == self.node,
                    Recording.started < self._cutoff,
                )
            ).all()
            newest = s.scalar(
                select(func.max(Recording.started)).where(Recording.node == self.node)
            )
        paths = {
            side or os.path.join(sidecars, os.path.splitext(os.path.basename(path))[0] + ".json")
            for path, side in stuck
        }
        # rows never written (the database was unreachable until the crash): the sidecars
        # changed since the newest row's start
        if newest is not None:
            since = newest - RECONCILE_MARGIN
            try:
                with os.scandir(sidecars) as it:
                    for entry in it:
                        if entry.name.endswith(".json") and not entry.name.startswith("."):
                            try:
                                if since <= entry.stat().st_mtime < self._cutoff:
                                    paths.add(entry.path)
                            except OSError:
                                continue
            except OSError as exc:
                logger.error("cannot list the sidecars for reconciliation: %s", exc)
        docs = []
        for path in sorted(paths):
            try:
                if os.stat(path).st_mtime >= self._cutoff:
                    continue  # rewritten by this run's recovery: it arrives as an event
                with open(path, encoding="utf-8") as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue  # gone, or not yet recovered: recovery's business
            if (
                isinstance(doc, dict)
                and doc.get("status") in FINAL
                and doc.get("node", self.node) == self.node
                and isinstance(doc.get("id"), str)
            ):
                docs.append(doc)
        written = 0
        for doc in docs:
            with self.index.session() as s:
                row = s.get(Recording, doc["id"])
                current = row is not None and (row.status, row.sha256, row.size) == (
                    doc.get("status"),
                    doc.get("sha256"),
                    doc.get("size"),
                )
            if current:
                continue
            try:
                self._write(doc)
            except Exception as exc:
                if _transient(exc):
                    raise
                self.rejected += 1
                logger.error("sidecar %s not indexed: %s", doc.get("id"), exc)
                continue
            written += 1
        if written:
            logger.warning(
                "index: %d recording(s) finished by an earlier run written from their sidecars",
                written,
            )
        return written

    def _write(self, *docs: dict[str, Any]) -> None:
        """Upsert `docs` (and their upload rows) in one transaction. Another process may write
        the same recording at the same moment (its own start-up reconciliation reading this
        process's sidecar): the loser's insert of a row the winner just inserted is refused
        (primary key, one upload per recording) and it writes again, now as an update."""
        from sqlalchemy.exc import IntegrityError

        for attempt in range(WRITE_RACES):
            try:
                self._write_once(*docs)
                return
            except IntegrityError:
                if attempt == WRITE_RACES - 1:
                    raise

    def _write_once(self, *docs: dict[str, Any]) -> None:
        from storage.ingest import upsert_sidecar
        from storage.uploader import enqueue

        queued = False
        with self.index.session() as s:
            for doc in docs:
                rec = upsert_sidecar(s, doc, node=self.node)
                # recorded here, so this node's uploader owns it (recording-node, else hostname)
                rec.node = self.node
                if self.s3 is not None and rec.status in FINAL and rec.status != "failed":
                    queued = enqueue(s, rec, self.s3, time.time()) is not None or queued
                elif self.s3 is None:
                    rec.archive_state = "local"
        if queued and self.uploader is not None:
            self.uploader.wake()

    # -- component ------------------------------------------------------------------------------

    async def start(self) -> None:
        with self._lock:
            self._started = True
            if self._schema_ok and self.uploader is not None:
                self.uploader.start()

    def close(self) -> None:
        self._closing.set()
        self._queue.put(_STOP)
        self._writer.join(15)
        if self.uploader is not None:
            self.uploader.stop()
        self.index.close()

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        if self.uploader is not None and now - self._depth_at > 1.0:
            try:  # at most one COUNT per second, whatever the scrape rate
                self._depth = self.uploader.depth()
            except Exception:
                self.db_errors += 1
            self._depth_at = now
        uploads = dict(self.uploader.results) if self.uploader is not None else {}
        return {
            "upload_queue_depth": self._depth[0],
            "upload_oldest_age_seconds": self._depth[1],
            "uploads": uploads,
            "db_errors": self.db_errors,
            "index_rejected": self.rejected,
            **({"uploaded_bytes": self.uploader.uploaded_bytes} if self.uploader else {}),
            "index_pending": self._queue.qsize() + self._in_hand,
            "purged_local": self.purged_local,
        }


def _transient(exc: BaseException) -> bool:
    """Database unreachable, restarting, locked, or timed out: worth another try. A bad
    document (missing id, wrong types, a value the schema refuses) is not."""
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return isinstance(
        exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, OSError)
    )


def attach(daemon: DaemonContext) -> ArchiveComponent | None:
    s = daemon.settings
    if s.recording_dir is None and not s.recording_db:
        return None
    from storage.db import Index, SchemaError, default_url, make_engine, open_index
    from storage.uploader import S3Settings

    # relay.config fills recording_db with the embedded default; only a configured one is explicit
    explicit = bool((getattr(s, "raw", {}) or {}).get("recording-db"))
    url = s.recording_db if explicit else None
    if url is None:
        if s.recording_dir is None:  # not reached: config derives recording-db from the dir
            return None
        url = default_url(s.recording_dir)
    checked = True
    try:
        index = open_index(url, create=not explicit)
    except SchemaError as exc:
        if not exc.unreachable:  # out of date, not ours, unusable: the operator must act
            raise StartupError(str(exc)) from None
        # the server does not answer: relay and record anyway (sidecars on disk), index later
        logger.error("%s: starting without the index; rows are written once it answers", exc)
        index, checked = Index(url, make_engine(url)), False
    raw = getattr(s, "raw", {}) or {}
    node = raw.get("recording-node") or socket.gethostname()
    if s.recording_dir:  # the CLI on this host tells this node's files from others' by it
        from storage.spool_owner import mark

        try:
            mark(s.recording_dir, node)
        except OSError as exc:
            logger.warning("cannot mark %s as node %s's spool: %s", s.recording_dir, node, exc)
    s3 = S3Settings.from_settings(s)
    if s3 is not None:
        from relay.config.keyfile import shown
        from storage.s3.keys import TemplateError, check_template

        try:
            check_template(s3.prefix)
        except TemplateError as exc:
            index.close()
            raise StartupError(f"s3-prefix {shown(s3.prefix)!r}: {exc}") from None
    component = ArchiveComponent(
        index, s3, node, schema_checked=checked, root=s.recording_dir or None
    )
    recording = daemon.components.get("recording")
    if recording is not None:  # rtpvault.recording's component: it publishes sidecar documents
        cast(SidecarPublisher, recording).subscribe(component.on_recording)
    if s3 is not None:
        logger.info("archiving recordings to s3://%s/%s", s3.bucket, s3.prefix)
        if s3.lock_mode in ("GOVERNANCE", "COMPLIANCE") and s3.lock_days <= 0:
            logger.warning(
                "s3-object-lock-mode %s has no effect without s3-object-lock-days > 0 "
                "(the bucket's default retention, if any, still applies)",
                s3.lock_mode,
            )
    logger.info("recordings index: %s", index.engine.url.render_as_string(hide_password=True))
    return component
