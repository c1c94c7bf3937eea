"""The real daemon through an S3 outage and its own restart, index on SQLite and PostgreSQL:
20 recorded calls finish while S3 is down, the daemon is stopped with the uploads still queued,
S3 comes back, a new daemon on the same spool uploads every recording exactly once (versioned
bucket: a second upload would be a second version) with the local file's SHA-256. Backoff
shortened by config."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import func, select

from storage.db import open_index, upgrade
from storage.models import Recording, Upload
from tests.integration.recording.media import Call
from tests.support import daemons
from tests.support.db import all_archived
from tests.support.s3 import MotoServer
from tests.support.wait import wait_for

BUCKET = "outage"
CALLS = 20


def test_outage_and_restart_lose_nothing_and_store_nothing_twice(
    index_url: str, s3: MotoServer, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    extra = [
        f"--recording-dir={spool}",
        "--recording-format=eth",
        "--delete-delay=0",
        f"--s3-bucket={BUCKET}",
        f"--s3-endpoint-url={s3.endpoint}",
        "--s3-region=us-east-1",
        "--s3-retry-initial=0.2",
        "--s3-retry-max=1",
        "--s3-keep-local=false",
        "--recording-node=outage-node",
        "--s3-prefix={yyyy}/{mm}/{dd}/{call_id}/",
    ]
    if index_url.startswith("postgresql"):
        upgrade(index_url)
        extra.append(f"--recording-db={index_url}")
    else:
        index_url = "sqlite:///" + str(spool / "recordings.db")  # the embedded default
    s3.stop()
    relay = daemons.start("rtpvault", tmp_path / "run1", extra=extra)
    index = None
    try:
        for i in range(CALLS):
            call = Call(relay, f"outage-{i}@192.0.2.1")
            call.offer(**{"record-call": "yes", "metadata": f"from:a{i}|to:b{i}"})
            call.answer()
            call.media(3)
            call.delete()
            call.close()
        index = open_index(index_url, create=False)

        def all_tried_while_down() -> bool:
            with index.session() as s:
                tried = s.scalar(
                    select(func.count())
                    .select_from(Upload)
                    .where(Upload.attempts >= 1, Upload.last_error.is_not(None))
                )
            return tried == CALLS

        assert wait_for(all_tried_while_down, 90), relay.log()[-3000:]
    finally:
        relay.stop()  # with every upload still queued
    assert index is not None
    with index.session() as s:
        assert set(s.scalars(select(Upload.state)).all()) == {"pending"}
        assert set(s.scalars(select(Recording.archive_state)).all()) == {"pending"}

    s3.start()  # moto keeps nothing across a restart: the bucket is created again
    s3.client.create_bucket(Bucket=BUCKET)
    s3.client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    relay = daemons.start("rtpvault", tmp_path / "run2", extra=extra)
    try:

        assert wait_for(lambda: all_archived(index, CALLS), 90), relay.log()[-3000:]
    finally:
        relay.stop()
    versions = s3.client.list_object_versions(Bucket=BUCKET).get("Versions", [])
    assert len(versions) == CALLS
    with index.session() as s:
        rows = s.scalars(select(Recording)).all()
        assert {r.call_id for r in rows} == {f"outage-{i}@192.0.2.1" for i in range(CALLS)}
        assert {j.state for j in s.scalars(select(Upload))} == {"done"}
    for rec in rows:
        assert not Path(rec.path).exists()  # removed after the checksum was confirmed
        body = s3.client.get_object(Bucket=BUCKET, Key=rec.object_key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == rec.sha256
        assert rec.object_key is not None and rec.object_key.endswith(".pcap")
    index.close()
