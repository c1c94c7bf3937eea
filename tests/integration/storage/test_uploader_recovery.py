"""Uploader edge cases against moto_server, index on SQLite and PostgreSQL: a crash between the
upload and the bookkeeping stores nothing twice, a file already in S3 is adopted only when it is
the same file, SSE-KMS headers, the index's retain-until is S3's own, and a database outage while
the outcome is written neither kills the worker nor strands the job."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select, update

from storage.db import Index
from storage.models import Recording, Upload
from storage.uploader import Uploader
from tests.support.db import recording
from tests.support.s3 import MotoServer

from .test_uploader import BUCKET, make_recording, queue, settings


def versioned_bucket(s3: MotoServer, lock: bool = False) -> None:
    if lock:  # Object Lock turns versioning on by itself
        s3.client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        return
    s3.client.create_bucket(Bucket=BUCKET)
    s3.client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})


def versions(s3: MotoServer) -> list[dict[str, object]]:
    return list(s3.client.list_object_versions(Bucket=BUCKET).get("Versions", []))


def crash_after_upload(index: Index, rec: Recording) -> None:
    """Put the rows back as a process killed right after S3 answered would have left them."""
    with index.session() as s:
        s.execute(
            update(Upload)
            .where(Upload.recording_id == rec.id)
            .values(state="uploading", claimed_by="dead-process", version_id=None)
        )
        s.execute(
            update(Recording)
            .where(Recording.id == rec.id)
            .values(archive_state="pending", object_key=None, object_version=None)
        )


def test_crash_between_upload_and_bookkeeping_stores_nothing_twice(
    index: Index, s3: MotoServer, tmp_path: Path
) -> None:
    versioned_bucket(s3)
    st = settings(s3)
    rec = make_recording(index, tmp_path)
    queue(index, rec, st)
    assert Uploader(index, st, "n1").run_once() == 1
    first = versions(s3)
    assert len(first) == 1
    crash_after_upload(index, rec)
    up = Uploader(index, st, "n1")
    assert up.requeue_abandoned() == 1
    assert up.run_once() == 1
    assert versions(s3) == first  # found in S3 and adopted, not uploaded again
    with index.session() as s:
        job = s.scalars(select(Upload)).one()
        row = recording(s, rec.id)
        assert (job.state, job.attempts, row.archive_state) == ("done", 2, "archived")
        assert row.object_version == first[0]["VersionId"]


def test_crash_after_multipart_completion_is_adopted_too(
    index: Index, s3: MotoServer, tmp_path: Path
) -> None:
    versioned_bucket(s3)
    st = settings(s3, multipart_threshold=6 * 2**20, part_size=5 * 2**20)
    rec = make_recording(index, tmp_path, size=11 * 2**20)
    queue(index, rec, st)
    Uploader(index, st, "n1").run_once()
    crash_after_upload(index, rec)
    up = Uploader(index, st, "n1")
    up.requeue_abandoned()
    up.run_once()
    assert len(versions(s3)) == 1
    with index.session() as s:
        assert s.scalars(select(Upload.state)).one() == "done"


def test_a_different_object_under_the_key_is_replaced_not_adopted(
    index: Index, s3: MotoServer, tmp_path: Path
) -> None:
    versioned_bucket(s3)
    st = settings(s3)
    rec = make_recording(index, tmp_path)
    queue(index, rec, st)
    with index.session() as s:
        job = s.scalars(select(Upload)).one()
        s.execute(update(Upload).values(attempts=3))  # as if tried before
    s3.client.put_object(Bucket=BUCKET, Key=job.key, Body=b"someone else's bytes")
    assert Uploader(index, st, "n1").run_once() == 1
    body = s3.client.get_object(Bucket=BUCKET, Key=job.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == rec.sha256
    assert len(versions(s3)) == 2


def test_local_file_gone_but_archived_before_the_crash(
    index: Index, s3: MotoServer, tmp_path: Path
) -> None:
    versioned_bucket(s3)
    st = settings(s3)
    rec = make_recording(index, tmp_path)
    queue(index, rec, st)
    Uploader(index, st, "n1").run_once()
    crash_after_upload(index, rec)
    Path(rec.path).unlink()
    up = Uploader(index, st, "n1")
    up.requeue_abandoned()
    up.run_once()
    with index.session() as s:
        job = s.scalars(select(Upload)).one()
        row = recording(s, rec.id)
        assert (job.state, row.archive_state, row.local_removed) == ("done", "archived", True)
    assert len(versions(s3)) == 1


def test_local_file_gone_and_not_in_s3_fails_for_good(
    index: Index, s3: MotoServer, tmp_path: Path
) -> None:
    versioned_bucket(s3)
    st = settings(s3)
    rec = make_recording(index, tmp_path)
    queue(index, rec, st)
    Path(rec.path).unlink()
    Uploader(index, st, "n1").run_once()
    with index.session() as s:
        job = s.scalars(select(Upload)).one()
        assert job.state == "failed" and "missing" in (job.last_error or "")
        assert recording(s, rec.id).archive_state == "failed"


def test_sse_kms_with_key_id(index: Index, s3: MotoServer, tmp_path: Path) -> None:
    s3.client.create_bucket(Bucket=BUCKET)
    import boto3

    key_id = boto3.client(
        "kms",
        endpoint_url=s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_key()["KeyMetadata"]["Arn"]
    st = settings(s3, sse="aws:kms", kms_key_id=key_id)
    rec = make_recording(index, tmp_path)
    queue(index, rec, st)
    Uploader(index, st, "n1").run_once()
    with index.session() as s:
        row = recording(s, rec.id)
        assert row.archive_state == "archived"
    head = s3.client.head_object(Bucket=BUCKET, Key=row.object_key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_id


def test_retain_until_in_the_index_is_the_objects_own(
    index: Index, s3: MotoServer, tmp_path: Path
) -> None:
    versioned_bucket(s3, lock=True)
    st = settings(s3, lock_mode="GOVERNANCE", lock_days=3)
    rec = make_recording(index, tmp_path)
    queue(index, rec, st)
    Uploader(index, st, "n1").run_once()
    with index.session() as s:
        row = recording(s, rec.id)
    # (moto 5's GetObjectRetention answers 500 with the body; HEAD carries the same two fields)
    got = s3.client.head_object(Bucket=BUCKET, Key=row.object_key, VersionId=row.object_version)
    assert got["ObjectLockMode"] == "GOVERNANCE"
    assert row.retain_until == got["ObjectLockRetainUntilDate"].timestamp()


def impatient_index(url: str) -> Index:
    """The same database, but a blocked write fails after 0.2 s instead of waiting."""
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 0.2, "check_same_thread": False})
        event.listen(engine, "connect", lambda c, _r: c.execute("PRAGMA busy_timeout=200"))
    else:
        engine = create_engine(url, connect_args={"options": "-c lock_timeout=200"})
    return Index(url, engine)


class WriteBlocker:
    """Another client holding the write lock the uploader needs (SQLite: the database file;
    PostgreSQL: the uploads table), as a database outage looks to the uploader."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    def hold(self) -> None:
        if self.url.startswith("sqlite"):
            path = self.url[len("sqlite:///") :]
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.conn = psycopg.connect(self.url.replace("postgresql+psycopg", "postgresql"))
            self.conn.execute("LOCK TABLE uploads IN EXCLUSIVE MODE")

    def release(self) -> None:
        if self.url.startswith("sqlite"):
            self.conn.execute("ROLLBACK")
        else:
            self.conn.rollback()
        self.conn.close()


def test_database_outage_while_recording_the_outcome(
    index_url: str, index: Index, s3: MotoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s3.client.create_bucket(Bucket=BUCKET)
    st = settings(s3, workers=1)
    rec = make_recording(index, tmp_path)
    queue(index, rec, st)
    blocker = WriteBlocker(index_url)
    client = s3.client
    # right after the checksum read-back, before the outcome is written: the database "goes down"
    client.meta.events.register("after-call.s3.HeadObject", lambda **_: blocker.hold())
    up = Uploader(impatient_index(index_url), st, "n1", client=client)
    with caplog.at_level(logging.ERROR, logger="rtpvault.upload"):
        up.start()
        try:
            assert wait(lambda: "cannot record the outcome" in caplog.text)
            blocker.release()  # the database is back
            assert wait(lambda: up.results["done"] == 1)
        finally:
            up.stop()
            up.index.close()
    with index.session() as s:
        job = s.scalars(select(Upload)).one()
        assert (job.state, recording(s, rec.id).archive_state) == ("done", "archived")
    assert len(object_keys(s3)) == 1


def wait(cond: Callable[[], bool], bound: float = 30.0) -> bool:
    deadline = time.monotonic() + bound  # bounds a stuck uploader; not a timing assertion
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def object_keys(s3: MotoServer) -> list[str]:
    return [o["Key"] for o in s3.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
