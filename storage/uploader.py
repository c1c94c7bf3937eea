"""The S3 archive: a durable upload queue in the index, drained by worker threads (boto3).

ARCHITECTURE rule 5. A finished recording becomes an `uploads` row (`enqueue`); workers claim
due rows (`pending` and `next_try` passed), upload, read the checksum back, and only then mark
the row `done`, the recording `archived`, and (unless `s3-keep-local`) remove the local file.
A failure puts the row back to `pending` with exponential backoff and the error text; a file
that is gone for good marks it `failed`. Restart resumes: rows left `uploading` by a dead
process go back to `pending`, and a multipart upload continues from the parts S3 already has
(`list_parts`), so a `kill -9` in the middle of a large file does not start it over.

Integrity (storage.s3.objects does the S3 side): every PUT / part carries `ChecksumSHA256`, and the
object's checksum is read back with `head_object(ChecksumMode=ENABLED)` and compared with the one
computed locally (a single PUT: SHA-256 of the file; multipart: S3's composite SHA-256 of the
part digests). The file's plain SHA-256 is also stored as object metadata `sha256` for
`rtpvault fetch`/`verify`. A job tried before first looks whether S3 already holds the very same
file (a reply lost in an outage, a crash between upload and bookkeeping) so no recording is
stored twice. Attempts count claims, so a crashed attempt counts too. Credentials come only from
boto3's standard chain.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, and_, select, update

from storage import claims
from storage.backoff import Backoff
from storage.db import Index
from storage.models import Recording, Upload
from storage.s3.keys import object_key
from storage.s3.objects import MiB, ObjectWriter, composite, digests, version_of

__all__ = ["S3Settings", "Uploader", "enqueue", "file_sha256"]

logger = logging.getLogger("rtpvault.upload")

REQUEUE_INTERVAL = 60.0
"""Seconds between two looks for jobs a dead process left `uploading`."""


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str = "{yyyy}/{mm}/{dd}/"
    endpoint_url: str | None = None
    region: str | None = None
    sse: str = "none"  # none | AES256 | aws:kms
    kms_key_id: str | None = None
    lock_mode: str = "none"  # none | GOVERNANCE | COMPLIANCE
    lock_days: int = 0
    storage_class: str | None = None
    keep_local: bool = True
    multipart_threshold: int = 16 * MiB
    part_size: int = 8 * MiB
    workers: int = 2
    backoff_initial: float = 2.0
    backoff_max: float = 300.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, s: Any) -> S3Settings | None:
        if not getattr(s, "s3_bucket", None):
            return None
        raw = getattr(s, "raw", {}) or {}

        def num(key: str, default: float) -> float:
            try:
                return float(raw.get(key) or default)
            except ValueError:
                return default

        return cls(
            bucket=s.s3_bucket,
            prefix=s.s3_prefix or "{yyyy}/{mm}/{dd}/",
            endpoint_url=s.s3_endpoint_url,
            region=s.s3_region,
            sse=s.s3_sse or "none",
            kms_key_id=s.s3_kms_key_id,
            lock_mode=s.s3_object_lock_mode or "none",
            lock_days=s.s3_object_lock_days,
            storage_class=s.s3_storage_class,
            keep_local=s.s3_keep_local,
            backoff_initial=num("s3-retry-initial", 2.0),
            backoff_max=num("s3-retry-max", 300.0),
            workers=int(num("s3-workers", 2)) or 1,
        )


def file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def enqueue(
    session: Any, rec: Recording, settings: S3Settings, now: float, *, maybe_stored: bool = False
) -> Upload | None:
    """Queue `rec` for upload (once: a recording has at most one upload row).

    `maybe_stored`: the object may already be in S3 (an index rebuilt from sidecars after the
    database was lost): the job counts as tried before, so the uploader looks first."""
    existing = session.scalars(select(Upload).where(Upload.recording_id == rec.id)).first()
    if existing is not None:
        return None
    job = Upload(
        recording_id=rec.id,
        path=rec.path,
        key=object_key(settings.prefix, rec),
        sha256=rec.sha256,
        size=rec.size,
        state="pending",
        attempts=1 if maybe_stored else 0,
        next_try=now,
        created=now,
        updated=now,
        parts=[],
    )
    session.add(job)
    rec.archive_state = "pending"
    return job


class PermanentError(Exception):
    """Retrying cannot help (the local file is gone)."""


class Uploader:
    """Worker threads draining the `uploads` queue of this node into S3."""

    def __init__(
        self, index: Index, settings: S3Settings, node: str = "", client: Any = None
    ) -> None:
        self.index = index
        self.settings = settings
        self.node = node
        # names this process (host, pid, start time): storage.claims tells a dead holder's
        # claims, which may be handed back, from a live one's (another worker's), which may not
        self.token = claims.own_token()
        self._requeued_at = 0.0
        self._client = client
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.results: dict[str, int] = {"done": 0, "retry": 0, "failed": 0}
        self.uploaded_bytes = 0  # bytes of files stored by this process (not adopted ones)
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            cfg = Config(
                retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30
            )
            self._client = boto3.client(
                "s3",
                endpoint_url=self.settings.endpoint_url,
                region_name=self.settings.region,
                config=cfg,
            )
        return self._client

    def start(self) -> None:
        try:
            self.requeue_abandoned()
        except Exception as exc:  # the jobs stay `uploading` until a start that can reach it
            logger.error("could not hand back abandoned uploads: %s", str(exc).splitlines()[0])
        self._requeued_at = time.monotonic()
        for i in range(max(1, self.settings.workers)):
            t = threading.Thread(target=self._run, args=(i == 0,), name=f"s3-upload-{i}",
                                 daemon=True)  # fmt: skip
            t.start()
            self._threads.append(t)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def requeue_abandoned(self) -> int:
        """Rows of this node left `uploading` by a process that is gone go back to `pending`;
        a live process's (another worker's) claims stay (storage.claims)."""
        now = time.time()
        with self.index.session() as s:
            held = s.execute(
                select(Upload.id, Upload.claimed_by, Upload.updated)
                .join(Recording, Recording.id == Upload.recording_id)
                .where(
                    Upload.state == "uploading",
                    Upload.claimed_by.is_distinct_from(self.token),
                    Recording.node == self.node,
                )
            ).all()
        me = claims.current()
        n = 0
        for job_id, token, updated in held:
            if not claims.abandoned(token, updated or 0.0, now, me):
                continue
            with self.index.session() as s:
                res = cast(
                    CursorResult[Any],
                    s.execute(
                        update(Upload)
                        # only if still that claim: it may have ended (or moved) meanwhile
                        .where(
                            Upload.id == job_id,
                            Upload.state == "uploading",
                            Upload.claimed_by.is_not_distinct_from(token),
                        )
                        .values(state="pending", claimed_by=None, next_try=0.0)
                        .execution_options(synchronize_session=False)
                    ),
                )
                n += int(res.rowcount or 0)
        if n:
            logger.warning("%d upload(s) left by a process that is gone queued again", n)
        return n

    def _requeue_now(self) -> None:
        """Every REQUEUE_INTERVAL, from the first worker thread: a dead process's jobs are
        handed back even when no process restarts after it (fewer workers)."""
        now = time.monotonic()
        if now - self._requeued_at < REQUEUE_INTERVAL:
            return
        self._requeued_at = now
        try:
            self.requeue_abandoned()
        except Exception as exc:
            logger.error("could not hand back abandoned uploads: %s", str(exc).splitlines()[0])

    # -- queue ----------------------------------------------------------------------------------

    def depth(self) -> tuple[int, float]:
        """(this node's jobs not done, age in seconds of the oldest of them)."""
        from sqlalchemy import func

        with self.index.session() as s:
            n, oldest = s.execute(
                select(func.count(Upload.id), func.min(Upload.created))
                .join(Recording, Recording.id == Upload.recording_id)
                .where(Upload.state.in_(("pending", "uploading")), Recording.node == self.node)
            ).one()
        return int(n or 0), (time.time() - oldest) if oldest else 0.0

    def _claim(self) -> Upload | None:
        now = time.time()
        with self.index.session() as s:
            candidates = s.scalars(
                select(Upload.id)
                .join(Recording, Recording.id == Upload.recording_id)
                .where(
                    Upload.state == "pending", Upload.next_try <= now, Recording.node == self.node
                )
                .order_by(Upload.next_try, Upload.id)
                .limit(8)
            ).all()
        for job_id in candidates:
            with self.index.session() as s:
                res = cast(
                    CursorResult[Any],
                    s.execute(
                        update(Upload)
                        .where(and_(Upload.id == job_id, Upload.state == "pending"))
                        .values(
                            state="uploading",
                            claimed_by=self.token,
                            updated=now,
                            attempts=Upload.attempts + 1,
                        )
                        .execution_options(synchronize_session=False)
                    ),
                )
                if res.rowcount == 1:
                    return s.get(Upload, job_id)
        return None

    def _run(self, requeues: bool = False) -> None:
        while not self._stop.is_set():
            if requeues:
                self._requeue_now()
            try:
                job = self._claim()
            except Exception as exc:  # DB down: log and wait; nothing is lost, rows persist
                logger.error("upload queue unavailable: %s", str(exc).splitlines()[0])
                job = None
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self.process(job)
            except Exception:  # a bug must not silently take a worker away
                logger.exception("upload worker: unexpected error on %s", job.key)

    def run_once(self) -> int:
        """Process every due job in this thread (tests, `rtpvault db` tools); returns count."""
        n = 0
        while (job := self._claim()) is not None:
            self.process(job)
            n += 1
        return n

    # -- one job --------------------------------------------------------------------------------

    def process(self, job: Upload) -> None:
        try:
            head, checksum = self._upload(job)
        except PermanentError as exc:
            reason = str(exc)
            self._settle(job, lambda: self._finish_failed(job, reason))
            return
        except Exception as exc:
            error = exc
            self._settle(job, lambda: self._retry(job, error))
            return
        self._settle(job, lambda: self._finish_done(job, head, checksum))

    def _settle(self, job: Upload, record: Callable[[], None]) -> None:
        """Write the job's outcome to the index, waiting out a database outage: the worker
        thread must neither die nor leave the job `uploading` under its claim. If the process
        stops first, the next start hands the job back (requeue_abandoned); one already in S3
        is then adopted, not uploaded again."""
        backoff = Backoff(self._stop)
        while True:
            try:
                record()
                return
            except Exception as exc:
                logger.error(
                    "upload %s: cannot record the outcome (retrying in %.1f s): %s",
                    job.key,
                    backoff.delay,
                    str(exc).splitlines()[0] if str(exc) else exc,
                )
                if backoff.wait():
                    return

    def writer(self) -> ObjectWriter:
        st = self.settings
        return ObjectWriter(
            self.client(),
            st.bucket,
            sse=st.sse,
            kms_key_id=st.kms_key_id,
            lock_mode=st.lock_mode,
            lock_days=st.lock_days,
            storage_class=st.storage_class,
            multipart_threshold=st.multipart_threshold,
            part_size=st.part_size,
        )

    def _upload(self, job: Upload) -> tuple[dict[str, Any], str]:
        """Store the job's file (or find it already stored); return (its head_object, SHA-256)."""
        w = self.writer()
        if not os.path.exists(job.path):
            return self._missing_file(job, w)
        d = digests(job.path, w.part_size)
        if job.sha256 and d.sha256 != job.sha256:
            raise PermanentError(
                f"local file {job.path} changed since it was finished: SHA-256 {d.sha256} "
                f"!= recorded {job.sha256}"
            )
        multipart = w.is_multipart(d.size)
        expected = d.expected(multipart)
        if job.attempts > 1:  # tried before: the object may be there (lost reply, crash)
            found = w.find_existing(job.key, d.sha256, expected, d.size)
            if found is not None:
                logger.info(
                    "s3://%s/%s already holds %s: not uploading it again",
                    w.bucket,
                    job.key,
                    job.path,
                )
                return found, d.sha256
        args = w.object_args(job.key, d.sha256, job.recording_id)
        if multipart:
            version = w.multipart(
                job.path,
                args,
                d,
                job.multipart_id,
                list(job.parts or []),
                lambda uid, parts: self._save_parts(job, uid, parts),
                self._stop.is_set,
            )
        else:
            version = w.put(job.path, args, d)
        head = w.verify(job.key, version, expected, d.size)
        with self._lock:
            self.uploaded_bytes += d.size
        return head, d.sha256

    def _missing_file(self, job: Upload, w: ObjectWriter) -> tuple[dict[str, Any], str]:
        """The local file is gone: fine only if S3 already holds it (crash after the upload)."""
        if job.sha256 and job.size is not None:
            single = base64.b64encode(bytes.fromhex(job.sha256)).decode()
            candidates = [single]
            if job.parts:
                candidates.append(
                    composite(
                        [
                            p["ChecksumSHA256"]
                            for p in sorted(job.parts, key=lambda p: p["PartNumber"])
                        ]
                    )
                )
            for expected in candidates:
                found = w.find_existing(job.key, job.sha256, expected, job.size)
                if found is not None:
                    return found, job.sha256
        raise PermanentError(f"local file {job.path} is missing")

    def _save_parts(self, job: Upload, upload_id: str, parts: list[dict[str, Any]]) -> None:
        """Persist the multipart upload id and finished parts (the resume point)."""
        with self.index.session() as s:
            s.execute(
                update(Upload)
                .where(Upload.id == job.id)
                .values(multipart_id=upload_id, parts=list(parts), updated=time.time())
            )

    def _count(self, result: str) -> None:
        with self._lock:
            self.results[result] = self.results.get(result, 0) + 1

    def _finish_done(self, job: Upload, head: dict[str, Any], sha_hex: str) -> None:
        """Record the confirmed object, then (unless kept) remove the local file: the row says
        `archived` before the file goes, so a crash in between leaves a spare copy, never a
        recording that exists nowhere the index points to."""
        now = time.time()
        version = version_of(head)
        retain = head.get("ObjectLockRetainUntilDate")
        with self.index.session() as s:
            s.execute(
                update(Upload)
                .where(Upload.id == job.id)
                .values(
                    state="done", version_id=version, updated=now, last_error=None, claimed_by=None
                )
            )
            values: dict[str, Any] = {
                "archive_state": "archived",
                "object_key": job.key,
                "object_version": version,
                "object_sha256": sha_hex,
            }
            if retain is not None:  # S3's own retain-until date: purge never tries earlier
                values["retain_until"] = retain.timestamp()
            s.execute(update(Recording).where(Recording.id == job.recording_id).values(**values))
        if not self.settings.keep_local and os.path.exists(job.path):
            try:
                os.unlink(job.path)
                with self.index.session() as s:
                    s.execute(
                        update(Recording)
                        .where(Recording.id == job.recording_id)
                        .values(local_removed=True)
                    )
            except OSError as exc:
                logger.error("archived %s but could not remove it: %s", job.path, exc)
        elif not os.path.exists(job.path):
            with self.index.session() as s:
                s.execute(
                    update(Recording)
                    .where(Recording.id == job.recording_id)
                    .values(local_removed=True)
                )
        self._count("done")
        logger.info("archived %s to s3://%s/%s", job.path, self.settings.bucket, job.key)

    def _retry(self, job: Upload, exc: Exception) -> None:
        attempts = job.attempts
        delay = min(self.settings.backoff_max, self.settings.backoff_initial * 2 ** (attempts - 1))
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        with self.index.session() as s:
            s.execute(
                update(Upload)
                # only while the claim is still ours: a claim taken over (storage.claims, an
                # expired one of another host) belongs to its new holder, whose outcome counts
                .where(Upload.id == job.id, Upload.claimed_by == self.token)
                .values(
                    state="pending",
                    next_try=time.time() + delay,
                    last_error=text[:1000],
                    claimed_by=None,
                    updated=time.time(),
                )
            )
        self._count("retry")
        logger.warning(
            "upload of %s failed (attempt %d, next in %.0f s): %s", job.path, attempts, delay, text
        )

    def _finish_failed(self, job: Upload, reason: str) -> None:
        with self.index.session() as s:
            s.execute(
                update(Upload)
                .where(Upload.id == job.id)
                .values(state="failed", last_error=reason, claimed_by=None, updated=time.time())
            )
            s.execute(
                update(Recording)
                .where(Recording.id == job.recording_id)
                .values(archive_state="failed")
            )
        self._count("failed")
        logger.error("upload of %s failed for good: %s", job.path, reason)
