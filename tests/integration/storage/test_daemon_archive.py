"""A recorded call through the real rtpvault daemon ends as an index row and an S3 object whose
SHA-256 is the local file's; an explicit index with an old schema stops start-up."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

from sqlalchemy import select

from storage.db import open_index
from storage.models import Recording, Upload
from tests.integration.recording.media import Call
from tests.support import daemons
from tests.support.s3 import MotoServer
from tests.support.tools import free_port
from tests.support.wait import wait_for

BUCKET = "calls"


def test_recorded_call_is_indexed_and_archived(
    index_url: str, s3: MotoServer, tmp_path: Path
) -> None:
    s3.client.create_bucket(Bucket=BUCKET)
    spool = tmp_path / "spool"
    subprocess.run(
        [str(Path(daemons.rtpvault_command()[0])), "db", "upgrade", "--db", index_url],
        check=True,
        capture_output=True,
    ) if index_url.startswith("postgresql") else None
    extra = [
        f"--recording-dir={spool}",
        "--recording-format=eth",
        "--delete-delay=0",
        f"--s3-bucket={BUCKET}",
        f"--s3-endpoint-url={s3.endpoint}",
        "--s3-region=us-east-1",
        "--s3-keep-local=false",
        "--s3-retry-initial=0.2",
        "--s3-prefix={yyyy}/{call_id}/",
    ]
    if index_url.startswith("postgresql"):
        extra.append(f"--recording-db={index_url}")
    relay = daemons.start("rtpvault", tmp_path / "run", extra=extra)
    try:
        call = Call(relay, "archive-call@192.0.2.1")
        call.offer(**{"record-call": "yes", "metadata": "from:alice|to:bob"})
        call.answer()
        call.media(20, rtcp=True)
        call.delete()
        call.close()
        url = (
            index_url
            if index_url.startswith("postgresql")
            else "sqlite:///" + str(spool / "recordings.db")
        )
        index = open_index(url, create=False)

        def archived() -> bool:
            with index.session() as s:
                rec = s.scalars(select(Recording)).one()
                return rec.archive_state == "archived"

        assert wait_for(archived, 20, retry_on=(Exception,)), relay.log_path.read_text()[-3000:]
        with index.session() as s:
            rec = s.scalars(select(Recording)).one()
            job = s.scalars(select(Upload)).one()
            assert (rec.call_id, rec.caller, rec.callee) == (
                "archive-call@192.0.2.1",
                "alice",
                "bob",
            )
            assert rec.status == "complete" and rec.packets >= 40
            assert job.state == "done" and job.attempts == 1
        sidecar = json.loads(next((spool / "sidecars").glob("*.json")).read_text())
        assert sidecar["sha256"] == rec.sha256
        obj = s3.client.get_object(Bucket=BUCKET, Key=rec.object_key, ChecksumMode="ENABLED")
        body = obj["Body"].read()
        assert hashlib.sha256(body).hexdigest() == rec.sha256
        assert obj["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(rec.sha256)).decode()
        assert not Path(rec.path).exists()  # s3-keep-local=false: removed after confirmation
        index.close()
    finally:
        relay.stop()


def test_explicit_index_with_old_schema_refuses_to_start(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    proc = subprocess.run(
        [
            *daemons.rtpvault_command(),
            "run",
            "--config-file=none",
            "--interface=lo/127.0.0.1",
            f"--recording-dir={tmp_path / 'spool'}",
            f"--recording-db=sqlite:///{db}",
            f"--listen-ng=127.0.0.1:{free_port()}",
            "--foreground",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "rtpvault db upgrade" in proc.stderr


def test_sigterm_with_a_recorded_call_leaves_a_complete_row(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    relay = daemons.start(
        "rtpvault", tmp_path / "run", extra=[f"--recording-dir={spool}", "--recording-format=eth"]
    )
    call = Call(relay, "sigterm-call")
    call.offer(**{"record-call": "yes", "metadata": "from:carol|to:dave"})
    call.answer()
    call.media(10)
    call.close()
    relay.stop()  # SIGTERM with the call up: recorder finishes it, archive writes the row
    index = open_index("sqlite:///" + str(spool / "recordings.db"), create=False)
    with index.session() as s:
        rec = s.scalars(select(Recording)).one()
        assert (rec.status, rec.caller, rec.callee) == ("complete", "carol", "dave")
        assert rec.sha256 and rec.packets >= 20
    index.close()
