"""The S3 archive against a real S3 API (moto_server over HTTP), index on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from storage.db import Index
from storage.ingest import upsert_sidecar
from storage.models import Recording, Upload
from storage.uploader import S3Settings, Uploader, enqueue
from tests.support.db import recording
from tests.support.s3 import MotoServer

BUCKET = "rtpvault-archive"
REPO = Path(__file__).resolve().parents[3]


def make_recording(index: Index, tmp: Path, size: int = 20_000, node: str = "n1") -> Recording:
    rid = str(uuid.uuid4())
    path = tmp / f"call-{rid[:8]}.pcap"
    data = os.urandom(size)
    path.write_bytes(data)
    doc = {
        "id": rid,
        "node": node,
        "call_id": f"c/{rid[:6]}@x",
        "started": time.time(),
        "ended": time.time(),
        "status": "complete",
        "format": "pcap",
        "path": str(path),
        "size": size,
        "sha256": hashlib.sha256(data).hexdigest(),
        "streams": [],
    }
    with index.session() as s:
        return upsert_sidecar(s, doc)


def queue(index: Index, rec: Recording, st: S3Settings) -> None:
    with index.session() as s:
        enqueue(s, recording(s, rec.id), st, time.time())


def settings(s3: MotoServer, **over: Any) -> S3Settings:
    base: dict[str, Any] = dict(
        bucket=BUCKET,
        endpoint_url=s3.endpoint,
        region="us-east-1",
        backoff_initial=0.2,
        backoff_max=0.5,
        workers=2,
        prefix="rec/{yyyy}/{mm}/{dd}/{call_id}/",
    )
    base.update(over)
    return S3Settings(**base)


def test_upload_sends_and_checks_sha256_applies_sse_lock_and_class(
    index: Index, s3: MotoServer, tmp_path: Path
) -> None:
    s3.client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    st = settings(
        s3,
        sse="AES256",
        lock_mode="COMPLIANCE",
        lock_days=7,
        storage_class="STANDARD_IA",
        keep_local=False,
    )
    rec = make_recording(index, tmp_path)
    queue(index, rec, st)
    assert Uploader(index, st, "n1").run_once() == 1
    with index.session() as s:
        row = recording(s, rec.id)
        job = s.scalars(select(Upload)).one()
        assert (job.state, row.archive_state, row.local_removed) == ("done", "archived", True)
    assert not os.path.exists(rec.path)  # removed only after the checksum was confirmed
    head = s3.client.head_object(Bucket=BUCKET, Key=row.object_key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(rec.sha256 or "")).decode()
    assert head["Metadata"]["sha256"] == rec.sha256
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"].timestamp() > time.time() + 6 * 86400
    assert head["StorageClass"] == "STANDARD_IA"
    assert row.object_key.startswith("rec/") and "c%2F" in row.object_key  # call-id escaped
    assert row.retain_until is not None and row.retain_until > time.time() + 6 * 86400


def test_multipart_upload_of_a_large_file(index: Index, s3: MotoServer, tmp_path: Path) -> None:
    s3.client.create_bucket(Bucket=BUCKET)
    st = settings(s3, multipart_threshold=6 * 2**20, part_size=5 * 2**20)
    rec = make_recording(index, tmp_path, size=12 * 2**20 + 123)
    queue(index, rec, st)
    Uploader(index, st, "n1").run_once()
    with index.session() as s:
        job = s.scalars(select(Upload)).one()
        assert job.state == "done", job.last_error
        assert len(job.parts) == 3
    body = s3.client.get_object(Bucket=BUCKET, Key=job.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == rec.sha256
    assert os.path.exists(rec.path)  # s3-keep-local defaults to keeping it


def test_a_changed_local_file_is_never_archived(
    index: Index, s3: MotoServer, tmp_path: Path
) -> None:
    s3.client.create_bucket(Bucket=BUCKET)
    st = settings(s3)
    rec = make_recording(index, tmp_path)
    Path(rec.path).write_bytes(b"tampered")
    queue(index, rec, st)
    Uploader(index, st, "n1").run_once()
    with index.session() as s:
        job = s.scalars(select(Upload)).one()
        assert job.state == "failed" and "changed since it was finished" in (job.last_error or "")
    assert s3.client.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_s3_outage_while_20_recordings_finish(index: Index, s3: MotoServer, tmp_path: Path) -> None:
    st = settings(s3)
    s3.stop()
    recs = [make_recording(index, tmp_path, size=3000) for _ in range(20)]
    for rec in recs:
        queue(index, rec, st)
    up = Uploader(index, st, "n1")
    up.start()
    try:
        deadline = time.monotonic() + 30
        while up.results["retry"] < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert up.results["retry"] >= 20  # every one failed at least once while S3 was down
        s3.start()  # moto keeps no state: the bucket comes back empty
        s3.client.create_bucket(Bucket=BUCKET)
        s3.client.put_bucket_versioning(
            Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"}
        )
        deadline = time.monotonic() + 60
        while up.results["done"] < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        up.stop()
    assert up.results["done"] == 20
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert len(keys) == len(set(keys)) == 20
    versions = s3.client.list_object_versions(Bucket=BUCKET).get("Versions", [])
    assert len(versions) == 20  # versioned bucket: a second upload would be a second version
    with index.session() as s:
        assert {j.state for j in s.scalars(select(Upload))} == {"done"}


KILL_SCRIPT = """
import sys, time
from storage.db import open_index
from storage.uploader import S3Settings, Uploader
import storage.uploader as u
ix = open_index(sys.argv[1], create=False)
st = S3Settings(bucket=sys.argv[2], endpoint_url=sys.argv[3], region="us-east-1",
                multipart_threshold=6 * 2**20, part_size=5 * 2**20)
orig = u.Uploader._save_parts
def slow(self, job, upload_id, parts):
    orig(self, job, upload_id, parts)
    if parts:
        print("PART", len(parts), flush=True)
        time.sleep(30)   # killed here
u.Uploader._save_parts = slow
Uploader(ix, st, "n1").run_once()
"""


def test_kill_9_during_multipart_upload_resumes(
    index_url: str, index: Index, s3: MotoServer, tmp_path: Path
) -> None:
    s3.client.create_bucket(Bucket=BUCKET)
    st = settings(s3, multipart_threshold=6 * 2**20, part_size=5 * 2**20)
    rec = make_recording(index, tmp_path, size=16 * 2**20)
    queue(index, rec, st)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, index_url, BUCKET, s3.endpoint],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("PART 1"), line
    proc.kill()
    proc.wait()
    with index.session() as s:
        job = s.scalars(select(Upload)).one()
        assert job.state == "uploading" and job.multipart_id and len(job.parts) == 1
        upload_id = job.multipart_id
    up = Uploader(index, st, "n1")
    assert up.requeue_abandoned() == 1
    assert up.run_once() == 1
    with index.session() as s:
        job = s.scalars(select(Upload)).one()
        assert job.state == "done", job.last_error
        assert job.multipart_id == upload_id  # continued, not restarted
    body = s3.client.get_object(Bucket=BUCKET, Key=job.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == rec.sha256


def test_a_live_processs_claim_is_not_requeued(
    index_url: str, index: Index, s3: MotoServer, tmp_path: Path
) -> None:
    """Two processes of one node (two `num-threads` workers) drain one queue: a process
    starting, or looking for abandoned jobs, must not hand back the job another live process is
    uploading (it would be uploaded twice); once that process is dead (kill -9), it must."""
    s3.client.create_bucket(Bucket=BUCKET)
    st = settings(s3, multipart_threshold=6 * 2**20, part_size=5 * 2**20)
    rec = make_recording(index, tmp_path, size=16 * 2**20)
    queue(index, rec, st)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, index_url, BUCKET, s3.endpoint],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("PART 1"), line
        other = Uploader(index, st, "n1")  # another worker, alive meanwhile
        assert other.requeue_abandoned() == 0
        assert other.run_once() == 0
        with index.session() as s:
            job = s.scalars(select(Upload)).one()
            assert job.state == "uploading" and job.claimed_by != other.token
    finally:
        proc.kill()
        proc.wait()
    assert other.requeue_abandoned() == 1
    assert other.run_once() == 1
    with index.session() as s:
        job = s.scalars(select(Upload)).one()
        assert (job.state, job.attempts) == ("done", 2), job.last_error
    body = s3.client.get_object(Bucket=BUCKET, Key=job.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == rec.sha256


def test_other_nodes_jobs_are_left_alone(index: Index, s3: MotoServer, tmp_path: Path) -> None:
    s3.client.create_bucket(Bucket=BUCKET)
    st = settings(s3)
    rec = make_recording(index, tmp_path, node="other-node")
    queue(index, rec, st)
    assert Uploader(index, st, "n1").run_once() == 0
    with index.session() as s:
        assert s.scalars(select(Upload.state)).one() == "pending"


@pytest.mark.parametrize("template", ["{yyyy}/{call_id}/", "x/{bogus}/"])
def test_prefix_template(template: str) -> None:
    from storage.s3.keys import TemplateError, check_template

    if "bogus" in template:
        with pytest.raises(TemplateError, match="bogus"):
            check_template(template)
    else:
        check_template(template)


def test_a_failed_attempt_does_not_undo_a_claim_taken_over(
    index: Index, s3: MotoServer, tmp_path: Path
) -> None:
    """A claim taken over meanwhile (an expired claim of another host, storage.claims) belongs
    to its new holder: the first holder's failed attempt must not put the job back to
    `pending` under it (a third process would then upload it too)."""
    st = settings(s3)  # no bucket created: every attempt fails
    rec = make_recording(index, tmp_path)
    queue(index, rec, st)
    first = Uploader(index, st, "n1")
    job = first._claim()
    assert job is not None
    with index.session() as s:  # taken over by another process while this one uploads
        s.execute(update(Upload).values(claimed_by="c1|elsewhere|b|n|1|1|x"))
    first.process(job)
    with index.session() as s:
        got = s.scalars(select(Upload)).one()
        assert (got.state, got.claimed_by) == ("uploading", "c1|elsewhere|b|n|1|1|x")
